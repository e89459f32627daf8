import { readFileSync } from "node:fs";
import { S3 } from "./workers/s3.ts";
const cfg = JSON.parse(readFileSync("/tmp/herd-dev-try/s3.json", "utf8"));
const s3 = new S3(cfg);
await s3.put("a/b c+d.txt", "hello");
console.log((await s3.get("a/b c+d.txt")).toString(), await s3.head("a/b c+d.txt"), await s3.list("a/"));
await s3.delete("a/b c+d.txt"); console.log(await s3.head("a/b c+d.txt"), await s3.list("a/"));
try { await new S3({ ...cfg, secretAccessKey: "wrong" }).get("x"); } catch (e) { console.log(String(e)); }
