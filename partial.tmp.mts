import { components, up } from "./test/cluster/controlplane.ts";
const keep = new Set(process.argv.slice(2));
for (let i = components.length - 1; i >= 0; i--) if (!keep.has(components[i]!.name)) components.splice(i, 1);
const t = Date.now();
const e = await up("/tmp/herd-dev-try", { log: console.log });
console.log(Date.now() - t, e);
