// `herd crds generate` writes the CRD manifests and docs/api.md from the zod schemas;
// `herd crds check` exits non-zero when the committed files differ from them.
import { parseArgs } from "node:util";
import { drift, writeGenerated } from "../crds/generate.ts";

export async function run(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true });
  const [action] = positionals;
  if (action === "generate") {
    for (const file of writeGenerated()) console.log(`wrote ${file}`);
    return 0;
  }
  if (action === "check") {
    const stale = drift();
    if (stale.length === 0) return 0;
    console.error(`stale generated files (run \`herd crds generate\`): ${stale.join(", ")}`);
    return 1;
  }
  console.error("usage: herd crds generate | herd crds check");
  return 2;
}
