// A minimal workflow for the dev server test: one activity call, its result returned.
import { proxyActivities } from "@temporalio/workflow";

const { greet } = proxyActivities<{ greet(name: string): Promise<string> }>({
  startToCloseTimeout: "30 seconds",
});

export async function hello(name: string): Promise<string> {
  return await greet(name);
}
