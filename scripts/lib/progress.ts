/** A one-line progress bar on stderr (redrawn in place on a terminal, a line per update otherwise). */
export function progressBar(label: string, total: number) {
  const started = Date.now();
  let last = 0;
  return {
    update(done: number, extra = '') {
      const now = Date.now();
      if (now - last < 200 && done < total) return;
      last = now;
      const width = 30;
      const filled = total ? Math.round((done / total) * width) : width;
      const rate = done / Math.max((now - started) / 1000, 0.001);
      const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${rate.toFixed(1)}/s ${extra}`;
      if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
      else process.stderr.write(`${line}\n`);
    },
    done() {
      if (process.stderr.isTTY) process.stderr.write('\n');
    },
  };
}
