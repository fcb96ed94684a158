// /proc readers: CPU time of a process tree (utime+stime of every process and thread in it)
// and per-CPU busy time. Linux only (elsewhere the figures are absent, not wrong).
import { readFileSync, readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";

let clkTck: number | undefined;
/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 almost everywhere). */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface Stat {
  pid: number;
  ppid: number;
  ticks: number; // utime + stime, all threads of the process
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited meanwhile
  }
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  return { pid, ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** PIDs of `root` and all its descendants. */
export function processTree(root: number): number[] {
  const all: Stat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) all.push(s);
  }
  const tree = new Set<number>([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const s of all)
      if (!tree.has(s.pid) && tree.has(s.ppid)) {
        tree.add(s.pid);
        grew = true;
      }
  }
  return [...tree];
}

/** CPU seconds (user + system) used so far by the processes in `pids`. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / ticksPerSecond();
}

/** Busy and total jiffies per CPU ("cpu" = all CPUs, "cpu0", "cpu1", ...). */
export function cpuTimes(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    if (!line.startsWith("cpu")) continue;
    const [name, ...f] = line.trim().split(/\s+/);
    const n = f.map(Number);
    const total = n.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is inside user)
    const idle = (n[3] ?? 0) + (n[4] ?? 0); // idle + iowait
    out.set(name!, { busy: total - idle, total });
  }
  return out;
}

/** Busy fraction per CPU between two cpuTimes() readings. */
export function busyBetween(a: ReturnType<typeof cpuTimes>, b: ReturnType<typeof cpuTimes>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of b) {
    const start = a.get(name);
    if (!start) continue;
    const total = end.total - start.total;
    out[name] = total > 0 ? (end.busy - start.busy) / total : 0;
  }
  return out;
}

/** CPU seconds per PID of `pids` (absent: exited). */
export function cpuByPid(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const s = readStat(pid);
    if (s) out.set(pid, s.ticks / ticksPerSecond());
  }
  return out;
}
