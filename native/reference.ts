// Plain-TypeScript references the native engine is checked against in tests and the demo.

/** Deterministic uniform values in [-1, 1) from a seed (xorshift32), never all zeros. */
export function randomMatrix(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** C = A·B with a triple loop, accumulated in double precision. */
export function naiveMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p]! * b[p * n + j]!;
      c[i * n + j] = sum;
    }
  return c;
}

/** max |x − ref| / max(|ref|, 1): relative for large entries, absolute near zero. */
export function maxRelativeError(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (x.length !== ref.length) throw new Error(`length ${x.length} != ${ref.length}`);
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const err = Math.abs(x[i]! - ref[i]!) / Math.max(Math.abs(ref[i]!), 1);
    if (!(err <= worst)) worst = err; // NaN propagates as the worst error
  }
  return worst;
}
