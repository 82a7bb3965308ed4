// Callback style, CommonJS: Lambda's oldest Node.js handler shape.
let count = 0;
exports.handler = function (event, context, callback) {
  count += 1;
  if (event.fail) return callback(new Error("callback failure"));
  setTimeout(() => callback(null, { count, style: "callback" }), 1);
};
