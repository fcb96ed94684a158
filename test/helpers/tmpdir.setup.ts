// vitest globalSetup: the run's temporary files (data directories, keys, certificates, the
// PostgreSQL cluster) go under one directory, removed when the run ends, so a test that leaves
// its own behind leaves nothing in /tmp. Test processes and everything they spawn inherit
// TMPDIR, which os.tmpdir() and mktemp read. Listed first: vitest tears down in reverse order,
// so PostgreSQL has stopped before its directory goes.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "certgate-tests-"));
  // Traversable, not listable: run as root, the PostgreSQL cluster inside belongs to the postgres user.
  chmodSync(dir, 0o711);
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
