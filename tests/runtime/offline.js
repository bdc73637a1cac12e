// Preloaded into the Prisma CLI by the runtime tests (NODE_OPTIONS=--require): any host name other
// than the loopback ones fails to resolve at once, so the CLI's error reporting (Sentry) and
// cloud calls can never leave the machine, whatever the network around the tests allows.
const dns = require("dns");

const lookup = dns.lookup;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1"]);

dns.lookup = function offlineLookup(hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  if (LOOPBACK.has(hostname)) {
    return lookup.call(dns, hostname, options, callback);
  }
  const error = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
  error.code = "ENOTFOUND";
  error.hostname = hostname;
  process.nextTick(() => callback(error));
  return {};
};
