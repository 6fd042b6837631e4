// Test servers on 127.0.0.1 at a free port: started, and closed even while they hold connections open.
import type { AddressInfo, Server, Socket } from 'node:net';

/** A server the test started, at `endpoint`; `close` ends it. */
export interface LoopbackServer {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * Starts `server` (a TCP or HTTP server) on a free port of 127.0.0.1. Its `close` also destroys the
 * connections still open: a server holding requests unanswered would otherwise never finish closing.
 */
export async function listenOnLoopback(server: Server): Promise<LoopbackServer> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
