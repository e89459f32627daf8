// The report's goodput section: a TrainingJob's attempts on a time axis, coloured by how each
// ended, the goodput figure, and a table of every attempt (status.attemptHistory and
// status.goodput, workflows/goodput.ts). Drawn here as static SVG: it needs no script.
import type { AttemptRecord, Goodput } from "../../workflows/goodput.ts";
import { escapeHtml } from "./html.ts";

export interface GoodputData {
  /** status.startTime: where the time axis begins. */
  startTime: string;
  goodput: Goodput;
  attempts: AttemptRecord[];
}

const colours: Record<string, string> = {
  succeeded: "#2e9d57",
  preempted: "#e0962b",
  suspended: "#9aa3b5",
};
const colourOf = (outcome: string) => colours[outcome] ?? "#c8443a";

const duration = (s: number | undefined) =>
  s === undefined
    ? ""
    : s < 120
      ? `${s.toFixed(1)} s`
      : s < 7200
        ? `${(s / 60).toFixed(1)} min`
        : `${(s / 3600).toFixed(1)} h`;

/** The attempts as bars on one time axis, from the job's start to the newest attempt's end. */
function timeline(d: GoodputData): string {
  const width = 1000,
    lane = 26,
    left = 10,
    top = 8;
  const t0 = Date.parse(d.startTime);
  const t1 = Math.max(t0 + 1, ...d.attempts.map((a) => Date.parse(a.end)));
  const x = (iso: string) => left + ((Date.parse(iso) - t0) / (t1 - t0)) * (width - 2 * left);
  const bars = d.attempts.map((a) => {
    const x0 = x(a.start),
      w = Math.max(1, x(a.end) - x0);
    const tip = `attempt ${a.attempt}: ${a.outcome} (${a.reason}), steps ${a.fromStep}→${a.toStep}, ${a.stepsLost} lost`;
    return (
      `<g class="attempt" data-attempt="${a.attempt}" data-outcome="${escapeHtml(a.outcome)}">` +
      `<rect x="${x0.toFixed(1)}" y="${top}" width="${w.toFixed(1)}" height="${lane}" fill="${colourOf(a.outcome)}"><title>${escapeHtml(tip)}</title></rect>` +
      (w > 24
        ? `<text x="${(x0 + 4).toFixed(1)}" y="${top + 17}" fill="#fff">${a.attempt}</text>`
        : "") +
      `</g>`
    );
  });
  const total = (t1 - t0) / 1000;
  return (
    `<svg viewBox="0 0 ${width} ${top + lane + 22}" width="100%" role="img" aria-label="attempts over time">` +
    `<line class="frame" x1="${left}" x2="${width - left}" y1="${top + lane + 2}" y2="${top + lane + 2}"/>` +
    bars.join("") +
    `<text class="tick" x="${left}" y="${top + lane + 16}">0</text>` +
    `<text class="tick" x="${width - left}" y="${top + lane + 16}" text-anchor="end">${escapeHtml(duration(total))}</text>` +
    `</svg>`
  );
}

function table(attempts: AttemptRecord[]): string {
  const head = [
    "attempt",
    "outcome",
    "reason",
    "start",
    "steps",
    "lost",
    "to first step",
    "SIGTERM checkpoint",
    "productive",
  ];
  const rows = attempts.map((a) =>
    [
      String(a.attempt),
      a.outcome,
      a.reason,
      a.start,
      `${a.fromStep} → ${a.toStep}`,
      String(a.stepsLost),
      duration(a.resumeSeconds),
      duration(a.checkpointSeconds),
      duration(a.productiveSeconds),
    ]
      .map((c) => `<td>${escapeHtml(c)}</td>`)
      .join(""),
  );
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead>
<tbody>${rows.map((r) => `<tr>${r}</tr>`).join("\n")}</tbody></table>`;
}

/** The section's HTML. */
export function goodputSection(d: GoodputData): string {
  const g = d.goodput;
  const summary =
    `Goodput ${(g.ratio * 100).toFixed(1)} %: ${duration(g.productiveSeconds)} of ${duration(g.wallSeconds)} ` +
    `went into steps that were kept` +
    (g.suspendedSeconds > 0 ? ` (${duration(g.suspendedSeconds)} suspended, not counted)` : "") +
    `; ${g.stepsLost} step${g.stepsLost === 1 ? "" : "s"} trained again.`;
  const legend = Object.entries({ ...colours, failed: colourOf("failed") })
    .map(([k, c]) => `<span style="color:${c}">■</span> ${k}`)
    .join(" ");
  return `<section id="goodput">
<h2>Attempts and goodput</h2>
<p class="summary">${escapeHtml(summary)}</p>
${d.attempts.length > 0 ? `${timeline(d)}<p class="meta">${legend}; gaps are time with no attempt running.</p>${table(d.attempts)}` : "<p>No attempt has ended yet.</p>"}
</section>`;
}
