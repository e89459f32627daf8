// `herd demo` (npm run demo): the most complete real job herd can run today. Until the
// end-to-end training issue lands, that is the native engine itself: a matrix product on the
// CPU backend checked against a plain loop, with its throughput.
import { native } from "../native/index.ts";
import { naiveMatmul, maxRelativeError, randomMatrix } from "../native/reference.ts";

export async function run(): Promise<number> {
  const n = 512;
  const a = randomMatrix(n * n, 1);
  const b = randomMatrix(n * n, 2);
  console.log(`herd demo: backends ${native.backends().join(", ")}`);
  const t0 = performance.now();
  const c = await native.matmul(a, b, n, n, n);
  const seconds = (performance.now() - t0) / 1000;
  const error = maxRelativeError(c, naiveMatmul(a, b, n, n, n));
  const gflops = (2 * n ** 3) / seconds / 1e9;
  console.log(
    `matmul ${n}x${n}: ${gflops.toFixed(1)} GFLOP/s, max relative error ${error.toExponential(2)}`,
  );
  return error < 1e-4 ? 0 : 1;
}
