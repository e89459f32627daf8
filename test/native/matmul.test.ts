// The native matrix product (OpenBLAS) against a double-precision triple loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { native } from "../../native/index.ts";
import { maxRelativeError, naiveMatmul, randomMatrix } from "../../native/reference.ts";

test("matmul matches a naive loop on random non-square inputs", async () => {
  for (const [m, k, n, seed] of [
    [1, 1, 1, 1],
    [7, 13, 5, 2],
    [64, 33, 129, 3],
    [200, 300, 100, 4],
  ] as const) {
    const a = randomMatrix(m * k, seed);
    const b = randomMatrix(k * n, seed + 100);
    const c = await native.matmul(a, b, m, k, n);
    assert.equal(c.length, m * n);
    const err = maxRelativeError(c, naiveMatmul(a, b, m, k, n));
    assert.ok(err < 1e-5, `${m}x${k}x${n}: relative error ${err}`);
  }
});

test("matmul rejects mismatched shapes and wrong types with a clear error", async () => {
  const a = randomMatrix(6, 1);
  assert.throws(() => native.matmul(a, a, 2, 3, 3), /b has 6 elements, expected k\*n = 9/);
  assert.throws(() => native.matmul(a, a, 0, 3, 2), /positive/);
  assert.throws(
    () => native.matmul(new Float64Array(6) as unknown as Float32Array, a, 2, 3, 2),
    /Float32Array/,
  );
});

test("matmul runs off the JavaScript thread", async () => {
  const n = 768;
  const a = randomMatrix(n * n, 5);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  await native.matmul(a, a, n, n, n);
  clearInterval(timer);
  // The event loop kept turning while the product was computed. A 768³ product takes tens of
  // milliseconds here; if it ran on the JS thread the interval could not fire in between.
  assert.ok(ticks >= 1, `event loop ticks during matmul: ${ticks}`);
});

test("backends lists cpu, and cuda when the CUDA library was built", () => {
  const backends = native.backends();
  assert.equal(backends[0], "cpu");
  if (process.env.HERD_CUDA_HOME) assert.ok(backends.includes("cuda"), `got ${backends}`);
  assert.equal(typeof native.cudaDeviceCount(), "number");
});
