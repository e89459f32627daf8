// `herd presets`: the model presets with their shapes and parameter counts, computed by the
// same code that builds the models (crds/model.ts). Counts assume the LLaMA tokenizer's
// 32,000-token vocabulary and an untied output, and also the 256-byte vocabulary.
import { parameterCount, resolveModel } from "../crds/model.ts";
import { presetNames, presets } from "../crds/presets.ts";

export function presetTable(): string[][] {
  const rows = [
    [
      "preset",
      "dim",
      "layers",
      "heads",
      "kv heads",
      "ffn hidden",
      "max seq",
      "peak lr",
      "params (vocab 32000)",
      "params (vocab 256)",
    ],
  ];
  for (const name of presetNames) {
    const spec = { preset: name, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false };
    const m = resolveModel(spec, 32000);
    const bytes = resolveModel(spec, 256);
    rows.push(
      [
        name,
        m.dim,
        m.nLayers,
        m.nHeads,
        m.nKvHeads,
        m.ffnHidden,
        m.maxSeqLen,
        presets[name].peakLr,
        parameterCount(m).toLocaleString("en-US"),
        parameterCount(bytes).toLocaleString("en-US"),
      ].map(String),
    );
  }
  return rows;
}

export async function run(argv: string[]): Promise<number> {
  const rows = presetTable();
  if (argv.includes("--markdown")) {
    const [head, ...body] = rows;
    console.log(`| ${head!.join(" | ")} |\n|${head!.map(() => "---").join("|")}|`);
    for (const r of body) console.log(`| ${r.join(" | ")} |`);
    return 0;
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join("  "));
  return 0;
}
