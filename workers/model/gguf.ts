// A GGUF reader (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), version 2 and 3,
// little-endian:
//
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
//   kv_count × (string key, u32 type, value), tensor_count × (string name, u32 n_dims,
//   n_dims × u64 ne, u32 ggml_type, u64 offset), padding to general.alignment (32),
//   then the tensor data, each tensor at its offset (aligned) from the data start.
//
// A string is u64 length + UTF-8 bytes; an array is u32 element type, u64 count, elements.
// ne[0] is the innermost (fastest-varying) dimension, so a matrix with ne = [in, out] is our
// row-major [out, in]. Written in TypeScript so that every read is bounds-checked by
// construction: a malformed file is a GgufError naming the problem and its byte offset, never
// an out-of-bounds read. Tensors are dequantised to fp32 on load: F32, F16, BF16, Q8_0,
// Q4_0, Q4_1 (block layouts as in ggml-common.h), and Q6_K, Q4_K, Q5_0, Q5_1 for the
// mixed files llama.cpp's quantiser writes.

export class GgufError extends Error {
  override name = "GgufError";
}

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] innermost. */
  ne: number[];
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  bytes: Uint8Array;
}

export const ggmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q4_K: 12,
  Q6_K: 14,
  BF16: 30,
} as const;

// [elements per block, bytes per block]
const blockOf: Record<number, [number, number]> = {
  [ggmlType.F32]: [1, 4],
  [ggmlType.F16]: [1, 2],
  [ggmlType.BF16]: [1, 2],
  [ggmlType.Q4_0]: [32, 18],
  [ggmlType.Q4_1]: [32, 20],
  [ggmlType.Q5_0]: [32, 22],
  [ggmlType.Q5_1]: [32, 24],
  [ggmlType.Q8_0]: [32, 34],
  [ggmlType.Q4_K]: [256, 144],
  [ggmlType.Q6_K]: [256, 210],
};

const typeName = (t: number) =>
  Object.entries(ggmlType).find(([, v]) => v === t)?.[0] ?? `type ${t}`;

const maxStringBytes = 1 << 24;
const maxArrayLength = 1 << 24;
const maxDims = 4;

class Reader {
  private view: DataView;
  at = 0;
  constructor(
    readonly bytes: Uint8Array,
    private source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  fail(msg: string, at = this.at): never {
    throw new GgufError(`${this.source}: ${msg} (at byte ${at})`);
  }
  need(n: number, what: string): void {
    if (n > this.bytes.length - this.at)
      this.fail(
        `${what} needs ${n} bytes but the file ends ${this.bytes.length - this.at} bytes later`,
      );
  }
  u8(what: string) {
    this.need(1, what);
    return this.view.getUint8(this.at++);
  }
  u32(what: string) {
    this.need(4, what);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }
  count(what: string, max: number): number {
    const at = this.at;
    const v = this.u64(what);
    if (v > BigInt(max)) this.fail(`${what} ${v} exceeds the limit ${max}`, at);
    return Number(v);
  }
  string(what: string): string {
    const n = this.count(`${what} length`, maxStringBytes);
    this.need(n, what);
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.at, n).toString("utf8");
    this.at += n;
    return s;
  }
  value(type: number, what: string, depth = 0): GgufValue {
    const v = this.view;
    const fixed = (n: number, get: (o: number) => GgufValue) => {
      this.need(n, what);
      const x = get(this.at);
      this.at += n;
      return x;
    };
    switch (type) {
      case 0:
        return fixed(1, (o) => v.getUint8(o));
      case 1:
        return fixed(1, (o) => v.getInt8(o));
      case 2:
        return fixed(2, (o) => v.getUint16(o, true));
      case 3:
        return fixed(2, (o) => v.getInt16(o, true));
      case 4:
        return fixed(4, (o) => v.getUint32(o, true));
      case 5:
        return fixed(4, (o) => v.getInt32(o, true));
      case 6:
        return fixed(4, (o) => v.getFloat32(o, true));
      case 7: {
        const at = this.at;
        const b = this.u8(what);
        if (b > 1) this.fail(`${what}: bool byte ${b} is neither 0 nor 1`, at);
        return b === 1;
      }
      case 8:
        return this.string(what);
      case 9: {
        if (depth > 2) this.fail(`${what}: arrays nested too deeply`);
        const elemType = this.u32(`${what} array type`);
        const n = this.count(`${what} array length`, maxArrayLength);
        // every element takes at least one byte: a length beyond the file is malformed
        if (n > this.bytes.length - this.at)
          this.fail(`${what}: array of ${n} elements exceeds the file`);
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(elemType, what, depth + 1);
        return out;
      }
      case 10:
        return fixed(8, (o) => v.getBigUint64(o, true));
      case 11:
        return fixed(8, (o) => v.getBigInt64(o, true));
      case 12:
        return fixed(8, (o) => v.getFloat64(o, true));
      default:
        return this.fail(`${what}: unknown value type ${type}`, this.at - 4);
    }
  }
}

/** Parses a GGUF file's header, metadata and tensor table; checks every tensor lies in the file. */
export function parseGguf(bytes: Uint8Array, source = "gguf"): GgufFile {
  const r = new Reader(bytes, source);
  r.need(4, "magic");
  const magic = Buffer.from(bytes.subarray(0, 4)).toString("latin1");
  if (magic !== "GGUF") r.fail(`not a GGUF file (magic ${JSON.stringify(magic)})`, 0);
  r.at = 4;
  const version = r.u32("version");
  if (version !== 2 && version !== 3) r.fail(`GGUF version ${version} is not supported (2, 3)`, 4);
  const nTensors = r.count("tensor count", 1 << 20);
  const nKv = r.count("metadata count", 1 << 20);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string(`metadata key ${i}`);
    const type = r.u32(`type of ${key}`);
    if (metadata.has(key)) r.fail(`metadata key ${key} repeats`);
    metadata.set(key, r.value(type, key));
  }
  const alignValue = metadata.get("general.alignment") ?? 32;
  if (typeof alignValue !== "number" || alignValue <= 0 || alignValue % 8 !== 0)
    r.fail(`general.alignment ${String(alignValue)} is not a positive multiple of 8`);
  const align = alignValue as number;
  const infos: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.string(`tensor ${i} name`);
    const at = r.at;
    const nDims = r.u32(`tensor ${name} dims`);
    if (nDims < 1 || nDims > maxDims)
      r.fail(`tensor ${name}: ${nDims} dimensions (1..${maxDims})`, at);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(r.count(`tensor ${name} ne[${d}]`, 1 << 30));
    const typeAt = r.at;
    const type = r.u32(`tensor ${name} type`);
    const block =
      blockOf[type] ?? r.fail(`tensor ${name}: ggml type ${type} is not supported`, typeAt);
    const elements = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements) || elements > 2 ** 34)
      r.fail(`tensor ${name}: too many elements`, at);
    if (ne[0]! % block[0] !== 0)
      r.fail(
        `tensor ${name}: row of ${ne[0]} is not a whole number of ${typeName(type)} blocks`,
        at,
      );
    const offsetAt = r.at;
    const offset = r.count(`tensor ${name} offset`, Number.MAX_SAFE_INTEGER);
    if (offset % align !== 0)
      r.fail(`tensor ${name}: offset ${offset} is not aligned to ${align}`, offsetAt);
    infos.push({ name, ne, type, offset, bytes: (elements / block[0]) * block[1] });
  }
  const dataStart = Math.ceil(r.at / align) * align;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    if (tensors.has(t.name)) r.fail(`tensor ${t.name} repeats`);
    const begin = dataStart + t.offset;
    if (begin + t.bytes > bytes.length)
      r.fail(
        `tensor ${t.name}: data [${begin}, ${begin + t.bytes}) lies beyond the file's ${bytes.length} bytes`,
        dataStart,
      );
    tensors.set(t.name, { ...t, offset: begin });
  }
  return { version, metadata, tensors, bytes };
}

// IEEE half to float.
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const halfTable = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = halfToFloat(i);
  return t;
})();

/** The tensor's values as fp32, in ggml order (row-major with ne[0] innermost). */
export function dequantize(file: GgufFile, t: GgufTensorInfo): Float32Array {
  const n = t.ne.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const b = file.bytes;
  const o = t.offset;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f16 = (at: number) => halfTable[view.getUint16(at, true)]!;
  switch (t.type) {
    case ggmlType.F32:
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(o + 4 * i, true);
      break;
    case ggmlType.F16:
      for (let i = 0; i < n; i++) out[i] = f16(o + 2 * i);
      break;
    case ggmlType.BF16: {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = view.getUint16(o + 2 * i, true) << 16;
      break;
    }
    case ggmlType.Q8_0: // { f16 d; i8 qs[32] }: x = d·q
      for (let blk = 0; blk < n / 32; blk++) {
        const at = o + blk * 34;
        const d = f16(at);
        for (let j = 0; j < 32; j++) out[blk * 32 + j] = d * view.getInt8(at + 2 + j);
      }
      break;
    case ggmlType.Q4_0: // { f16 d; u8 qs[16] }: low nibbles are x[0..16), high x[16..32); x = d·(q − 8)
      for (let blk = 0; blk < n / 32; blk++) {
        const at = o + blk * 18;
        const d = f16(at);
        for (let j = 0; j < 16; j++) {
          const q = b[at + 2 + j]!;
          out[blk * 32 + j] = d * ((q & 15) - 8);
          out[blk * 32 + j + 16] = d * ((q >> 4) - 8);
        }
      }
      break;
    case ggmlType.Q4_1: // { f16 d; f16 m; u8 qs[16] }: x = d·q + m
      for (let blk = 0; blk < n / 32; blk++) {
        const at = o + blk * 20;
        const d = f16(at);
        const m = f16(at + 2);
        for (let j = 0; j < 16; j++) {
          const q = b[at + 4 + j]!;
          out[blk * 32 + j] = d * (q & 15) + m;
          out[blk * 32 + j + 16] = d * (q >> 4) + m;
        }
      }
      break;
    case ggmlType.Q5_0: // { f16 d; u32 qh; u8 qs[16] }: 5th bit from qh; x = d·(q − 16)
    case ggmlType.Q5_1: {
      // Q5_1: { f16 d; f16 m; u32 qh; u8 qs[16] }: x = d·q + m
      const withMin = t.type === ggmlType.Q5_1;
      const size = withMin ? 24 : 22;
      for (let blk = 0; blk < n / 32; blk++) {
        const at = o + blk * size;
        const d = f16(at);
        const m = withMin ? f16(at + 2) : 0;
        const qhAt = at + (withMin ? 4 : 2);
        const qh = view.getUint32(qhAt, true);
        for (let j = 0; j < 16; j++) {
          const q = b[qhAt + 4 + j]!;
          const lo = (q & 15) | (((qh >>> j) & 1) << 4);
          const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          out[blk * 32 + j] = withMin ? d * lo + m : d * (lo - 16);
          out[blk * 32 + j + 16] = withMin ? d * hi + m : d * (hi - 16);
        }
      }
      break;
    }
    case ggmlType.Q4_K: // { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }
      for (let blk = 0; blk < n / 256; blk++) {
        const at = o + blk * 144;
        const d = f16(at);
        const dmin = f16(at + 2);
        const sc = (j: number) => b[at + 4 + j]!;
        // 6-bit scale and min of sub-block j (get_scale_min_k4)
        const scaleMin = (j: number): [number, number] =>
          j < 4
            ? [sc(j) & 63, sc(j + 4) & 63]
            : [(sc(j + 4) & 0xf) | ((sc(j - 4) >> 6) << 4), (sc(j + 4) >> 4) | ((sc(j) >> 6) << 4)];
        let y = blk * 256;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
          const q = at + 16 + j / 2;
          const [s1, m1] = scaleMin(is);
          const [s2, m2] = scaleMin(is + 1);
          for (let l = 0; l < 32; l++) out[y + l] = d * s1 * (b[q + l]! & 15) - dmin * m1;
          for (let l = 0; l < 32; l++) out[y + 32 + l] = d * s2 * (b[q + l]! >> 4) - dmin * m2;
          y += 64;
        }
      }
      break;
    case ggmlType.Q6_K: // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }
      for (let blk = 0; blk < n / 256; blk++) {
        const at = o + blk * 210;
        const d = f16(at + 208);
        for (let half = 0; half < 2; half++) {
          const ql = at + half * 64;
          const qh = at + 128 + half * 32;
          const sc = at + 192 + half * 8;
          const y = blk * 256 + half * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((b[ql + l]! & 15) | (((b[qh + l]! >> 0) & 3) << 4)) - 32;
            const q2 = ((b[ql + l + 32]! & 15) | (((b[qh + l]! >> 2) & 3) << 4)) - 32;
            const q3 = ((b[ql + l]! >> 4) | (((b[qh + l]! >> 4) & 3) << 4)) - 32;
            const q4 = ((b[ql + l + 32]! >> 4) | (((b[qh + l]! >> 6) & 3) << 4)) - 32;
            out[y + l] = d * view.getInt8(sc + is) * q1;
            out[y + l + 32] = d * view.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * view.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * view.getInt8(sc + is + 6) * q4;
          }
        }
      }
      break;
    default:
      throw new GgufError(`tensor ${t.name}: ggml type ${t.type} is not supported`);
  }
  return out;
}

/** Metadata helpers that fail with the key's name. */
export function metaNumber(f: GgufFile, key: string, fallback?: number): number {
  const v = f.metadata.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v === "number") return v;
  if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new GgufError(`metadata ${key} is ${v === undefined ? "missing" : "not a number"}`);
}

export function metaString(f: GgufFile, key: string, fallback?: string): string {
  const v = f.metadata.get(key);
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v === "string") return v;
  throw new GgufError(`metadata ${key} is ${v === undefined ? "missing" : "not a string"}`);
}

export function metaStrings(f: GgufFile, key: string): string[] | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw new GgufError(`metadata ${key} is not an array of strings`);
  return v as string[];
}

export function metaNumbers(f: GgufFile, key: string): number[] | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "number"))
    throw new GgufError(`metadata ${key} is not an array of numbers`);
  return v as number[];
}

// ---- writing (tests and `herd convert --to gguf`): F32 or F16 tensors and plain metadata ----

export type GgufWriteValue =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "strings"; value: string[] }
  | { type: "f32s"; value: number[] }
  | { type: "i32s"; value: number[] };

/**
 * A GGUF file's tokenizer (every tokenizer.* key: vocabulary, merges or scores, token types,
 * special ids, chat template) as metadata to write into another GGUF file, so that a model
 * converted from a herd checkpoint loads in llama.cpp with the tokenizer it was trained with.
 */
export function tokenizerMetadata(f: GgufFile): Record<string, GgufWriteValue> {
  const out: Record<string, GgufWriteValue> = {};
  for (const [key, v] of f.metadata) {
    if (!key.startsWith("tokenizer.")) continue;
    if (typeof v === "string") out[key] = { type: "string", value: v };
    else if (typeof v === "boolean") out[key] = { type: "bool", value: v };
    else if (typeof v === "number" || typeof v === "bigint")
      out[key] =
        Number.isInteger(Number(v)) && Number(v) >= 0
          ? { type: "u32", value: Number(v) }
          : { type: "f32", value: Number(v) };
    else if (Array.isArray(v) && v.every((x) => typeof x === "string"))
      out[key] = { type: "strings", value: v as string[] };
    else if (Array.isArray(v) && v.every((x) => typeof x === "number"))
      out[key] = key.endsWith(".scores")
        ? { type: "f32s", value: v as number[] }
        : { type: "i32s", value: v as number[] };
    else throw new GgufError(`metadata ${key}: a value herd cannot copy`);
  }
  if (!out["tokenizer.ggml.tokens"]) throw new GgufError("the file carries no tokenizer");
  return out;
}

export interface GgufWriteTensor {
  name: string;
  ne: number[];
  type: number;
  /** Raw block bytes in the tensor's ggml type. */
  data: Uint8Array;
}

export function encodeGguf(
  metadata: Record<string, GgufWriteValue>,
  tensors: GgufWriteTensor[],
  align = 32,
): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    u64(b.length);
    parts.push(b);
  };
  parts.push(Buffer.from("GGUF", "latin1"));
  u32(3);
  u64(tensors.length);
  u64(Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    str(k);
    const f32 = (x: number) => {
      const b = Buffer.alloc(4);
      b.writeFloatLE(x);
      parts.push(b);
    };
    const i32 = (x: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(x);
      parts.push(b);
    };
    switch (v.type) {
      case "u32":
        u32(4);
        u32(v.value);
        break;
      case "i32":
        u32(5);
        i32(v.value);
        break;
      case "f32":
        u32(6);
        f32(v.value);
        break;
      case "bool":
        u32(7);
        parts.push(Buffer.from([v.value ? 1 : 0]));
        break;
      case "string":
        u32(8);
        str(v.value);
        break;
      case "strings":
        u32(9);
        u32(8);
        u64(v.value.length);
        v.value.forEach(str);
        break;
      case "f32s":
        u32(9);
        u32(6);
        u64(v.value.length);
        v.value.forEach(f32);
        break;
      case "i32s":
        u32(9);
        u32(5);
        u64(v.value.length);
        v.value.forEach(i32);
        break;
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    t.ne.forEach(u64);
    u32(t.type);
    offsets.push(offset);
    u64(offset);
    offset = Math.ceil((offset + t.data.length) / align) * align;
  }
  let header = Buffer.concat(parts);
  const pad = (n: number) => Buffer.alloc((align - (n % align)) % align);
  header = Buffer.concat([header, pad(header.length)]);
  const data: Buffer[] = [];
  let at = 0;
  for (const [i, t] of tensors.entries()) {
    data.push(Buffer.alloc(offsets[i]! - at));
    data.push(Buffer.from(t.data));
    at = offsets[i]! + t.data.length;
  }
  return Buffer.concat([header, ...data]);
}

// ---- quantisation (ggml's reference rounding), for writing test files and F16/Q8_0 output ----

export function floatToHalf(x: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = x;
  const b = u[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  let m = b & 0x7fffff;
  if (((b >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m = (m | 0x800000) >> (1 - e);
    return sign | ((m + 0x1000) >> 13);
  }
  const h = sign | (e << 10) | (m >> 13);
  return m & 0x1000 ? h + 1 : h; // round half up on the dropped bits
}

/** Encodes fp32 values (ggml order) as `type` blocks. */
export function quantize(values: Float32Array, type: number): Uint8Array {
  const n = values.length;
  const [per, size] = blockOf[type] ?? [0, 0];
  if (
    !per ||
    n % per !== 0 ||
    type === ggmlType.Q4_K ||
    type === ggmlType.Q6_K ||
    type === ggmlType.Q5_0 ||
    type === ggmlType.Q5_1
  )
    throw new GgufError(`cannot quantise ${n} values to ${typeName(type)}`);
  const out = new Uint8Array((n / per) * size);
  const view = new DataView(out.buffer);
  switch (type) {
    case ggmlType.F32:
      for (let i = 0; i < n; i++) view.setFloat32(4 * i, values[i]!, true);
      break;
    case ggmlType.F16:
      for (let i = 0; i < n; i++) view.setUint16(2 * i, floatToHalf(values[i]!), true);
      break;
    case ggmlType.BF16:
      for (let i = 0; i < n; i++) {
        const f = new Float32Array([values[i]!]);
        view.setUint16(2 * i, new Uint32Array(f.buffer)[0]! >>> 16, true);
      }
      break;
    default:
      for (let blk = 0; blk < n / 32; blk++) {
        const x = values.subarray(blk * 32, blk * 32 + 32);
        const at = blk * size;
        if (type === ggmlType.Q8_0) {
          const amax = Math.max(...Array.from(x, Math.abs));
          const d = amax / 127;
          const id = d ? 1 / d : 0;
          view.setUint16(at, floatToHalf(d), true);
          for (let j = 0; j < 32; j++) view.setInt8(at + 2 + j, Math.round(x[j]! * id));
        } else if (type === ggmlType.Q4_0) {
          let max = 0;
          for (const v of x) if (Math.abs(v) > Math.abs(max)) max = v;
          const d = max / -8;
          const id = d ? 1 / d : 0;
          view.setUint16(at, floatToHalf(d), true);
          for (let j = 0; j < 16; j++) {
            const q0 = Math.min(15, Math.trunc(x[j]! * id + 8.5));
            const q1 = Math.min(15, Math.trunc(x[j + 16]! * id + 8.5));
            out[at + 2 + j] = q0 | (q1 << 4);
          }
        } else {
          let min = Infinity;
          let max = -Infinity;
          for (const v of x) {
            min = Math.min(min, v);
            max = Math.max(max, v);
          }
          const d = (max - min) / 15;
          const id = d ? 1 / d : 0;
          view.setUint16(at, floatToHalf(d), true);
          view.setUint16(at + 2, floatToHalf(min), true);
          for (let j = 0; j < 16; j++) {
            const q0 = Math.min(15, Math.trunc((x[j]! - min) * id + 0.5));
            const q1 = Math.min(15, Math.trunc((x[j + 16]! - min) * id + 0.5));
            out[at + 4 + j] = q0 | (q1 << 4);
          }
        }
      }
  }
  return out;
}
