import { createServer, request } from 'node:http';

/** A minimal HTTP reverse proxy on 127.0.0.1 sending each request to the next of `targets` in turn (benchmarks, tests; targets may be added later). */
export async function startRoundRobinProxy(targets: URL[], port = 0): Promise<{ url: string; close(): Promise<void> }> {
  let next = 0;
  const server = createServer((req, res) => {
    const target = targets[next++ % targets.length];
    if (!target) {
      res.writeHead(503).end();
      return;
    }
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.rawHeaders);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
