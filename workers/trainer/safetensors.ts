// A small safetensors reader and writer (https://huggingface.co/docs/safetensors), for fp32
// tensors: 8-byte little-endian header length N, N bytes of JSON
// { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } },
// then the tensors' bytes, contiguous, in header order. The reader trusts nothing: every
// bound, type and offset is checked and a bad file is a SafetensorsError naming the problem.

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Headers larger than this are refused (the format's own readers use 100 MB). */
export const maxHeaderBytes = 100_000_000;

/** Encodes tensors in the given order; the header is padded with spaces to 8-byte alignment. */
export function encodeSafetensors(
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length)
      throw new SafetensorsError(`${t.name}: shape [${t.shape}] does not hold ${t.data.length}`);
    header[t.name] = {
      dtype: "F32",
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** Decodes a safetensors file of F32 tensors; `source` names the file in errors. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source: string,
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.length < 8)
    fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = buf.readBigUInt64LE(0);
  if (headerLength > BigInt(Math.min(maxHeaderBytes, bytes.length - 8)))
    fail(
      `header length ${headerLength} exceeds the file (${bytes.length} bytes) or ${maxHeaderBytes}`,
    );
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(buf.subarray(8, dataStart).toString("utf8"));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header))
    fail("header is not a JSON object");
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        fail("__metadata__ is not an object");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof value !== "object" || value === null) fail(`tensor ${name}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (dtype !== "F32")
      fail(`tensor ${name}: dtype ${JSON.stringify(dtype)} is not supported (F32)`);
    if (!Array.isArray(shape) || !shape.every(isCount))
      fail(`tensor ${name}: shape must be an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount))
      fail(`tensor ${name}: data_offsets must be [begin, end] integers`);
    const [begin, end] = offsets as [number, number];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    if (begin > end || end > dataLength)
      fail(
        `tensor ${name}: data_offsets [${begin}, ${end}] lie outside the ${dataLength} data bytes`,
      );
    if (end - begin !== elements * 4)
      fail(
        `tensor ${name}: ${end - begin} bytes for shape [${shape}] of F32 (${elements * 4} expected)`,
      );
    entries.push({ name, shape: shape as number[], begin, end });
  }
  // The data must be covered exactly once: no overlaps, no holes, nothing trailing.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const e of entries) {
    if (e.begin !== covered)
      fail(`tensor ${e.name}: data starts at ${e.begin}, expected ${covered} (overlap or hole)`);
    covered = e.end;
  }
  if (covered !== dataLength) fail(`${dataLength - covered} data bytes belong to no tensor`);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const data = new Float32Array((e.end - e.begin) / 4); // copy: the file's bytes may be unaligned
    Buffer.from(data.buffer).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}
