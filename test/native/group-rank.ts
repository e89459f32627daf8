// One rank of a data-parallel group, as its own process, for test/native/group.test.ts:
//   node --import tsx group-rank.ts '<GroupOptions JSON>' <mode>
// Modes: sum (all-reduce rank-specific data; print its error against the exact sum and a
// hash), leave (join, then exit), wait-then-sum (join, pause, then all-reduce), idle (join,
// then stay alive without a collective), join (join, print, exit).
import { createHash } from "node:crypto";
import { engine } from "../../native/engine.ts";

const options = JSON.parse(process.argv[2]!) as Parameters<typeof engine.joinGroup>[0];
const mode = process.argv[3];
const n = 300_000; // more than one of Gloo's 1 MiB segments per rank

/** Rank r's contribution: values that differ per rank and per element. */
function contribution(rank: number, length: number): Float32Array {
  const a = new Float32Array(length);
  for (let i = 0; i < length; i++) a[i] = ((i % 1000) - 500) / 64 + rank * 1000;
  return a;
}

const say = (o: object) => console.log(JSON.stringify(o));
say({ joining: options.rank });
try {
  const group = await engine.joinGroup(options);
  if (mode === "sum") {
    const out = await group.allReduceSum(contribution(group.rank, n));
    // Against the exact sum of every rank's contribution (in double).
    const parts = Array.from({ length: group.world }, (_, r) => contribution(r, n));
    let maxError = 0;
    for (let i = 0; i < n; i++) {
      const exact = parts.reduce((s, p) => s + p[i]!, 0);
      maxError = Math.max(maxError, Math.abs(out[i]! - exact));
    }
    const sha256 = createHash("sha256").update(out).digest("hex");
    say({ rank: group.rank, world: group.world, length: out.length, maxError, sha256 });
  } else if (mode === "leave") {
    say({ joined: group.rank });
    process.exit(0);
  } else if (mode === "wait-then-sum") {
    // Joins, then takes part in a collective only after its peer is known to have left.
    say({ joined: group.rank });
    await new Promise((r) => setTimeout(r, 500));
    await group.allReduceSum(contribution(group.rank, n));
    say({ unexpected: "the all-reduce succeeded" });
  } else if (mode === "idle") {
    // Joins, then stays alive without ever taking part in a collective (a hung peer).
    say({ joined: group.rank });
    await new Promise((r) => setTimeout(r, 6_000));
  } else {
    say({ joined: group.rank, world: group.world });
  }
  process.exit(0);
} catch (err) {
  say({ error: (err as Error).message });
  process.exit(3);
}
