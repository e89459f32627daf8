// How `herd train` tells what it does: JSON lines (`--log json`: one per step, checkpoint,
// message; what trainer pods print and the worker reads, workers/activities/progress.ts) or a
// progress bar on a terminal.

export interface Logger {
  step(fields: {
    step: number;
    loss: number;
    lr: number;
    gradNorm: number;
    tokensPerSecond: number;
    etaSeconds: number;
  }): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string): void;
  end(): void;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60),
    h = Math.floor(m / 60);
  const mm = String(m % 60).padStart(2, "0"),
    ss = String(Math.floor(s % 60)).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function jsonLogger(): Logger {
  const line = (o: Record<string, unknown>) =>
    console.log(JSON.stringify({ time: new Date().toISOString(), ...o }));
  return {
    step: (f) => line({ event: "step", ...f }),
    info: (msg, fields) => line({ event: "info", msg, ...fields }),
    warn: (msg) => line({ event: "warning", msg }),
    end: () => {},
  };
}

export function progressLogger(totalSteps: number): Logger {
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write("\r\x1b[2K");
    drawn = false;
  };
  return {
    step: (f) => {
      const width = 24,
        done = Math.round((f.step / totalSteps) * width);
      const bar = "#".repeat(done) + ".".repeat(width - done);
      process.stderr.write(
        `\r\x1b[2Kstep ${f.step}/${totalSteps} [${bar}] loss ${f.loss.toFixed(4)} | ` +
          `${Math.round(f.tokensPerSecond)} tok/s | lr ${f.lr.toExponential(2)} | ETA ${formatDuration(f.etaSeconds)}`,
      );
      drawn = true;
    },
    info: (msg) => {
      clear();
      process.stderr.write(`${msg}\n`);
    },
    warn: (msg) => {
      clear();
      process.stderr.write(`warning: ${msg}\n`);
    },
    end: () => {
      if (drawn) process.stderr.write("\n");
      drawn = false;
    },
  };
}
