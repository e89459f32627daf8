// The trainer links herd_engine without Node and reads batches through herd::TokenSource.
// A small C++ program does exactly that, and its batch must equal the Node binding's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createMixtureLoader, writeShard } from "../../native/data.ts";
import { root } from "./helpers.ts";

const program = `
#include <cstdio>
#include <memory>
#include <vector>
#include "data/mixture.h"

int main(int argc, char** argv) {
  herd::data::MixtureOptions o;
  o.seed = 17;
  o.sources.push_back({"a", 2.0, argv[1], {}});
  o.sources.push_back({"b", 1.0, argv[2], {}});
  std::unique_ptr<herd::TokenSource> src = std::make_unique<herd::data::MixtureLoader>(o);
  std::vector<int32_t> out(4 * 9);
  src->batch(3, 1, 2, 4, 8, out.data());
  for (int32_t id : out) std::printf("%d ", id);
  std::printf("\\n%s", src->save_state().c_str());
  return 0;
}
`;

test(
  "a C++ program reads the same batch through herd::TokenSource",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "herd-link-"));
    try {
      for (const [name, base] of [
        ["a", 0],
        ["b", 1000],
      ] as const) {
        mkdirSync(path.join(dir, name));
        const ids = Int32Array.from({ length: 500 }, (_, i) => base + i);
        await writeShard(path.join(dir, name, "shard-000000.bin"), ids, [0, 200, 500], 2000);
      }
      const source = path.join(dir, "main.cc");
      const binary = path.join(dir, "main");
      writeFileSync(source, program);
      const build = path.join(root, "native/build");
      execFileSync("c++", [
        "-std=c++17",
        "-O1",
        "-I",
        path.join(root, "native/src"),
        source,
        "-o",
        binary,
        path.join(build, "libherd_engine.a"),
        "-lsentencepiece",
        "-lsentencepiece_train",
        "-lopenblas",
        "-fopenmp",
      ]);
      const [ids, ...state] = execFileSync(binary, [path.join(dir, "a"), path.join(dir, "b")], {
        encoding: "utf8",
      }).split("\n");
      const loader = createMixtureLoader({
        sources: [
          { name: "a", weight: 2, folder: path.join(dir, "a") },
          { name: "b", weight: 1, folder: path.join(dir, "b") },
        ],
        seed: 17,
      });
      const expected = await loader.batch(3, 1, 2, 4, 8);
      assert.deepEqual(ids!.trim().split(" ").map(Number), [...expected]);
      assert.equal(state.join("\n"), loader.saveState());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
