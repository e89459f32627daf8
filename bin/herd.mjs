#!/usr/bin/env node
// The `herd` command. herd is written in TypeScript and run through tsx, so the CLI, the
// operator, the workers and the tests all execute the same sources with no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
