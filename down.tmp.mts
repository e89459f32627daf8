import { down } from "./test/cluster/controlplane.ts";
await down(process.argv[2], console.log);
