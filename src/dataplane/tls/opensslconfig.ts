// certgate's OpenSSL configuration (openssl.cnf beside this file: one session ticket per full
// handshake). Node reads it only at start-up (its --openssl-config flag wins over OPENSSL_CONF),
// so whoever starts a process that serves TLS passes it: package.json's start script, the
// Dockerfile, and the primary for its workers.
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const OPENSSL_CONFIG = fileURLToPath(new URL("./openssl.cnf", import.meta.url));

/** The operator chose an OpenSSL configuration (OPENSSL_CONF or a Node flag): certgate keeps out of it. */
function operatorConfig(execArgv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  return env.OPENSSL_CONF !== undefined || execArgv.some((a) => a.startsWith("--openssl-config") || a === "--openssl-shared-config");
}

/** Node flags for a child process that serves TLS: certgate's OpenSSL configuration unless one was chosen already. */
export function opensslArgs(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  return operatorConfig(execArgv, env) ? [] : [`--openssl-config=${OPENSSL_CONFIG}`];
}

/** TLS 1.3 session tickets a process started with these flags sends per full handshake, for the start-up log. */
export function ticketsPerHandshake(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string {
  const flag = execArgv.findLast((a) => a.startsWith("--openssl-config="));
  if (flag && resolve(flag.slice("--openssl-config=".length)) === OPENSSL_CONFIG) return "1";
  return operatorConfig(execArgv, env) ? "as the operator's OpenSSL configuration says" : `2 (OpenSSL's default; start node with --openssl-config=${OPENSSL_CONFIG} for 1)`;
}
