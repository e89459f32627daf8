// SplitMix64 in BigInt arithmetic: the same stream as the engine's herd::Rng (rng.h), so
// choices made from a seed (few-shot examples) are reproducible anywhere.
export class Rng {
  private state: bigint;
  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }
  nextU64(): bigint {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Number(this.nextU64() % BigInt(n));
  }
}
