// The seeds' handler: a module-level instanceId repeats across warm invokes and differs
// across environments. Unmodified Lambda code (an ES module, async handler).
import { randomUUID } from "node:crypto";

const instanceId = randomUUID();
let count = 0;

export const handler = async (event, context) => {
  count += 1;
  console.log("node handler got", JSON.stringify(event));
  if (event.fail) throw new TypeError("asked to fail");
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  if (event.exit) process.exit(7);
  return {
    instanceId,
    count,
    pid: process.pid,
    requestId: context.awsRequestId,
    arn: context.invokedFunctionArn,
    remainingMs: context.getRemainingTimeInMillis(),
    custom: context.clientContext?.custom ?? null,
    functionName: context.functionName,
    memory: context.memoryLimitInMB,
    env: {
      handler: process.env._HANDLER,
      taskRoot: process.env.LAMBDA_TASK_ROOT,
      region: process.env.AWS_REGION,
      tz: process.env.TZ,
      logGroup: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStream: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      version: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    },
  };
};
