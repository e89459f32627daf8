// `herd backends`: what the native engine was built with and what it can use here.
import { native } from "../native/index.ts";

export async function run(): Promise<number> {
  console.log(`backends: ${native.backends().join(", ")}`);
  console.log(`cuda devices: ${native.cudaDeviceCount()}`);
  const why = native.cudaLoadError();
  if (why) console.log(`cuda: not available (${why})`);
  return 0;
}
