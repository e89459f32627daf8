// Every fuzz harness, run by Jazzer.js for a bounded number of executions over its committed
// corpus (seeds from herd's writers and the inputs of bugs found before), so a parser that
// regresses to throwing anything but its format error fails here. `npm run fuzz -- <name>`
// runs a real campaign (CONTRIBUTING.md).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { bundle, onlyFormatErrors, unbundle } from "./harness.ts";
import { corpusDir, harnesses, runCampaign } from "./run.ts";

const runs = 2000;

describe("fuzz harnesses", { concurrency: 2 }, () => {
  for (const [name, { guided }] of Object.entries(harnesses))
    test(`${name}: ${runs} libFuzzer executions over the corpus find nothing`, async () => {
      const seeds = readdirSync(corpusDir(name));
      assert.ok(seeds.length > 0, `test/fuzz/corpus/${name} is empty`);
      const workDir = mkdtempSync(path.join(tmpdir(), `herd-fuzz-${name}-`));
      try {
        const { code, output } = await runCampaign({ name, runs, workDir, seed: 1 });
        assert.equal(code, 0, output.slice(-4000));
        assert.match(output, new RegExp(`Done ${runs} runs`));
        // the corpus was read and, for the TypeScript parsers, libFuzzer saw their coverage
        const inited = /INITED (cov: (\d+))?/.exec(output);
        assert.ok(inited, output.slice(-4000));
        if (guided) assert.ok(Number(inited[2]) > 0, output.slice(-4000));
        assert.deepEqual(
          readdirSync(workDir).filter((f) => /^(crash|timeout|oom|leak)-/.test(f)),
          [],
        );
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
    });
});

test("a harness passes format errors that name the file and rethrows everything else", () => {
  class FormatError extends Error {}
  assert.doesNotThrow(() =>
    onlyFormatErrors([FormatError], "x.bin", () => {
      throw new FormatError("x.bin: bad magic");
    }),
  );
  assert.throws(
    () =>
      onlyFormatErrors([FormatError], "x.bin", () => {
        throw new FormatError("bad magic");
      }),
    /does not name x.bin/,
  );
  assert.throws(
    () =>
      onlyFormatErrors([FormatError], "x.bin", () => {
        throw new TypeError("Cannot read properties of null");
      }),
    TypeError,
  );
});

test("a bundle carries several files in one input; a cut input drops the files past it", () => {
  const b = bundle(["{}", Buffer.from([1, 2, 3]), ""]);
  const names = ["a", "b", "c", "d"];
  const all = unbundle(b, names);
  assert.deepEqual([...all.keys()], ["a", "b", "c"]);
  assert.equal(all.get("a")!.toString(), "{}");
  assert.deepEqual([...all.get("b")!], [1, 2, 3]);
  assert.equal(all.get("c")!.length, 0);
  const cut = unbundle(b.subarray(0, 4 + 2 + 4 + 1), names); // "a", then one byte of "b"
  assert.deepEqual([...cut.keys()], ["a", "b"]);
  assert.deepEqual([...cut.get("b")!], [1]);
});
