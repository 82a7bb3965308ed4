// lambdakube's Node.js runtime: a Runtime API (2018-06-01) client in plain JavaScript.
//
// Why our own: aws-lambda-ric (npm) needs a native build (node-gyp, a C++ toolchain and
// libcurl sources fetched at build time), which cannot be assumed offline; this file needs
// nothing but node. It loads the handler module unmodified, as Lambda's Node.js runtime
// does: `_HANDLER` is `<module>.<export>` (the export may be dotted), the module is
// `<LAMBDA_TASK_ROOT>/<module>.mjs`, `.js` or `.cjs` (ES modules and CommonJS both), and
// the handler is async (`export const handler = async (event, context) => ...`), returns a
// promise, or takes a callback (`(event, context, callback)`). Module-level state lives
// as long as the environment. `console.*` lines get Lambda's prefix
// (`<time>\t<request id>\t<LEVEL>\t`).
//
// `AWS_LAMBDA_MAX_CONCURRENCY` above 1 (perEnvironmentConcurrency, as Lambda Managed
// Instances) runs that many `/next` loops on the one event loop: up to N invocations at
// once, module state shared; each console line carries its own invocation's request id
// (AsyncLocalStorage), which is how the environment tells whose output it is.
//
// Differences from Lambda's client: a callback answers at once (as
// `context.callbackWaitsForEmptyEventLoop = false`); no response streaming.
//
// `NODE_PATH` (directories named node_modules, as Lambda's /opt/nodejs/node_modules) is
// honoured by `import` too, as Lambda's runtime makes its SDK importable from ES modules:
// Node's ES module resolver ignores NODE_PATH, so a resolve hook retries a bare
// specifier there (registered only when NODE_PATH is set: hooks cost a loader thread).
import http from "node:http";
import module from "node:module";
import path from "node:path";
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { format } from "node:util";
import { AsyncLocalStorage } from "node:async_hooks";

const [apiHost, apiPort] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const concurrency = Math.max(1, Number(process.env.AWS_LAMBDA_MAX_CONCURRENCY) || 1);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const base = "/2018-06-01/runtime";
let currentRequestId = null;
// With several invocations at once, each one's request id (one loop: currentRequestId).
const invocation = concurrency > 1 ? new AsyncLocalStorage() : null;
const requestId = () => (invocation ? invocation.getStore() : currentRequestId);

function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const request = http.request(
      {
        host: apiHost,
        port: Number(apiPort),
        method,
        path: base + urlPath,
        agent,
        headers: payload ? { "Content-Type": "application/json", "Content-Length": payload.length, ...headers } : headers,
      },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    if (payload) request.write(payload);
    request.end();
  });
}

function errorBody(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || "Error",
      errorMessage: error.message,
      trace: String(error.stack || "").split("\n"),
    };
  }
  return { errorType: typeof error === "object" && error !== null ? "object" : typeof error, errorMessage: String(error), trace: [] };
}

function patchConsole() {
  for (const [method, level] of [["log", "INFO"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["debug", "DEBUG"], ["trace", "TRACE"]]) {
    const stream = method === "error" || method === "warn" ? process.stderr : process.stdout;
    console[method] = (...args) => {
      const text = format(...args).replace(/\n/g, "\r");
      stream.write(`${new Date().toISOString()}\t${requestId() ?? "undefined"}\t${level}\t${text}\n`);
    };
  }
}

const RESOLVE_FROM_NODE_PATH = `
import path from "node:path";
import { pathToFileURL } from "node:url";
let parents = [];
export async function initialize(dirs) {
  parents = dirs.map((dir) => pathToFileURL(path.join(dir, "..", "lambdakube-node-path.mjs")).href);
}
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || /^(\\.|\\/|node:|file:|data:)/.test(specifier)) throw error;
    for (const parentURL of parents) {
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch {}
    }
    throw error;
  }
}
`;

function honourNodePath() {
  const dirs = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean);
  if (dirs.length && typeof module.register === "function") {
    module.register("data:text/javascript," + encodeURIComponent(RESOLVE_FROM_NODE_PATH), { data: dirs });
  }
}

async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const spec = process.env._HANDLER || "index.handler";
  const dot = spec.indexOf(".");
  if (dot < 1) {
    throw Object.assign(new Error(`Bad handler ${spec}`), { name: "Runtime.MalformedHandlerName" });
  }
  const moduleName = spec.slice(0, dot);
  const exportPath = spec.slice(dot + 1).split(".");
  const file = [".mjs", ".js", ".cjs"].map((ext) => path.resolve(root, moduleName + ext)).find((f) => fs.existsSync(f));
  if (!file) {
    throw Object.assign(new Error(`Cannot find module '${moduleName}'`), { name: "Runtime.ImportModuleError" });
  }
  let module;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw Object.assign(new Error(`${error.name}: ${error.message}`), { name: "Runtime.UserCodeSyntaxError", stack: error.stack });
    }
    throw error;
  }
  let handler = module;
  for (const name of exportPath) {
    handler = handler?.[name] ?? (handler === module ? module.default?.[name] : undefined);
  }
  if (typeof handler !== "function") {
    throw Object.assign(new Error(`${spec} is undefined or not exported`), { name: "Runtime.HandlerNotFound" });
  }
  return handler;
}

function makeContext(headers, done) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"]);
  const context = {
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: (error, result) => done(error, result),
    succeed: (result) => done(null, result),
    fail: (error) => done(error ?? "handled"),
  };
  if (headers["lambda-runtime-client-context"]) {
    context.clientContext = JSON.parse(headers["lambda-runtime-client-context"]);
  }
  if (headers["lambda-runtime-cognito-identity"]) {
    context.identity = JSON.parse(headers["lambda-runtime-cognito-identity"]);
  }
  return context;
}

function runHandler(handler, event, headers) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (error, result) => {
      if (settled) return;
      settled = true;
      resolve(error !== null && error !== undefined ? { error } : { result });
    };
    try {
      const context = makeContext(headers, done);
      const value = handler(event, context, done);
      if (value && typeof value.then === "function") {
        value.then((result) => done(null, result), (error) => done(error ?? new Error("rejected")));
      } else if (handler.length < 3) {
        done(null, value);
      }
    } catch (error) {
      done(error);
    }
  });
}

async function main() {
  patchConsole();
  honourNodePath();
  let handler;
  try {
    handler = await loadHandler();
  } catch (error) {
    const body = errorBody(error);
    process.stderr.write(`${new Date().toISOString()}\tundefined\tERROR\t${JSON.stringify(body)}\n`);
    await call("POST", "/init/error", JSON.stringify(body), { "Lambda-Runtime-Function-Error-Type": body.errorType });
    process.exit(1);
  }
  process.on("uncaughtException", async (error) => {
    const id = concurrency > 1 ? null : currentRequestId; // several at once: the exit fails them all
    if (id) {
      const body = errorBody(error);
      await call("POST", `/invocation/${id}/error`, JSON.stringify(body), { "Lambda-Runtime-Function-Error-Type": body.errorType }).catch(() => {});
    }
    process.exit(129);
  });
  await Promise.all(Array.from({ length: concurrency }, () => loop(handler)));
}

async function loop(handler) {
  for (;;) {
    const next = await call("GET", "/invocation/next");
    if (next.status !== 200) throw new Error(`/next answered ${next.status}: ${next.body}`);
    const id = next.headers["lambda-runtime-aws-request-id"];
    currentRequestId = id;
    const trace = next.headers["lambda-runtime-trace-id"];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    let outcome;
    try {
      const event = JSON.parse(next.body.toString("utf8"));
      outcome = await (invocation ? invocation.run(id, () => runHandler(handler, event, next.headers)) : runHandler(handler, event, next.headers));
    } catch (error) {
      outcome = { error };
    }
    if ("error" in outcome) {
      const body = errorBody(outcome.error);
      const report = () => console.error(`Invoke Error \t${JSON.stringify(body)}`);
      if (invocation) invocation.run(id, report);
      else report();
      await call("POST", `/invocation/${id}/error`, JSON.stringify(body), { "Lambda-Runtime-Function-Error-Type": body.errorType });
    } else {
      let payload;
      try {
        payload = JSON.stringify(outcome.result === undefined ? null : outcome.result);
      } catch (error) {
        const body = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body: ${error.message}`, trace: [] };
        await call("POST", `/invocation/${id}/error`, JSON.stringify(body), { "Lambda-Runtime-Function-Error-Type": body.errorType });
        currentRequestId = null;
        continue;
      }
      await call("POST", `/invocation/${id}/response`, payload);
    }
    currentRequestId = null;
  }
}

main().catch((error) => {
  process.stderr.write(`lambdakube node bootstrap: ${error.stack || error}\n`);
  process.exit(1);
});
