import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time (user + system, ms) of processes, from /proc (Linux): what a piece of work cost, whatever else the
 * machine was doing at the time. Undefined where /proc is not there.
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 1/100 s
  } catch {
    return undefined;
  }
}

/** Summed CPU time of every process whose command line contains one of `names` (e.g. the database's processes). */
export function matchingCpuMs(names: string[]): number | undefined {
  let total = 0;
  let seen = false;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((x) => /^\d+$/.test(x));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!names.some((n) => cmd.includes(n))) continue;
    const ms = processCpuMs(Number(pid));
    if (ms !== undefined) (total += ms), (seen = true);
  }
  return seen ? total : undefined;
}
