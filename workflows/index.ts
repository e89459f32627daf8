// Every workflow the control worker runs (its workflowsPath), and the workflow type per kind
// that the operator starts.
export { trainingJobWorkflow } from "./trainingjob.ts";
export { evalJobWorkflow } from "./evaljob.ts";
export { evalSweepWorkflow } from "./evalsweep.ts";
export { evalSweepRunWorkflow } from "./evalsweep.ts";
