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

/**
 * The bytes before the tensors' data: the 8-byte header length and the header, padded with
 * spaces to 8-byte alignment, for F32 tensors of these shapes in this order.
 */
export function safetensorsHeader(
  tensors: { name: string; shape: number[] }[],
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + headerBytes.length);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  return out;
}

/** Encodes tensors in the given order, whole, in memory (small files; see checkpoint streams). */
export function encodeSafetensors(
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  metadata: Record<string, string> = {},
): Buffer {
  for (const t of tensors) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length)
      throw new SafetensorsError(`${t.name}: shape [${t.shape}] does not hold ${t.data.length}`);
  }
  const head = safetensorsHeader(tensors, metadata);
  const out = Buffer.alloc(head.length + tensors.reduce((n, t) => n + t.data.byteLength, 0));
  head.copy(out, 0);
  let at = head.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** A tensor's place in a safetensors file: bytes [begin, end) of the data section. */
export interface TensorEntry {
  name: string;
  shape: number[];
  begin: number;
  end: number;
}

/** What a safetensors header says: where the data starts, each tensor's place, the metadata. */
export interface SafetensorsLayout {
  dataStart: number;
  entries: TensorEntry[];
  metadata: Record<string, string>;
}

/**
 * The header's length from the first 8 bytes of a file of `fileSize` bytes, checked: the
 * caller then reads that many bytes for parseSafetensorsHeader.
 */
export function safetensorsHeaderLength(
  first8: Uint8Array,
  fileSize: number,
  source: string,
): number {
  if (fileSize < 8 || first8.length < 8)
    throw new SafetensorsError(
      `${source}: file is ${fileSize} bytes, shorter than the 8-byte header length`,
    );
  const headerLength = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (headerLength > BigInt(Math.min(maxHeaderBytes, fileSize - 8)))
    throw new SafetensorsError(
      `${source}: header length ${headerLength} exceeds the file (${fileSize} bytes) or ${maxHeaderBytes}`,
    );
  return Number(headerLength);
}

/**
 * Checks a header (the JSON bytes after the length) of a file of `fileSize` bytes: F32
 * tensors only, every offset inside the data, the data covered exactly once.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  source: string,
): SafetensorsLayout {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  const dataStart = 8 + headerBytes.length;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(headerBytes).toString("utf8"));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header))
    fail("header is not a JSON object");
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
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
  return { dataStart, entries, metadata };
}

/** Decodes a safetensors file of F32 tensors, whole; `source` names the file in errors. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source: string,
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = safetensorsHeaderLength(buf, bytes.length, source);
  const { dataStart, entries, metadata } = parseSafetensorsHeader(
    buf.subarray(8, 8 + headerLength),
    bytes.length,
    source,
  );
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const data = new Float32Array((e.end - e.begin) / 4); // copy: the file's bytes may be unaligned
    Buffer.from(data.buffer).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}
