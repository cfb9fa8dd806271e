import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { errors } from '../fhir/outcomes.js';

/**
 * Requests Node's HTTP parser refuses before any middleware runs (a request line or headers over its limit,
 * malformed syntax) would get a bare `431`/`400` with no body; they get an OperationOutcome like every other
 * refusal. A long search belongs in the body of `POST [type]/_search`, which the message says.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: a reset connection or one with a response under way gets nothing more.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const ooe = tooLarge
      ? errors.badRequest('The request line or headers are larger than this server accepts; send a long search as POST [type]/_search with the parameters in the body')
      : timeout
        ? errors.badRequest('The request did not arrive in time')
        : errors.badRequest('The request is not valid HTTP');
    const status = tooLarge ? 431 : timeout ? 408 : 400;
    const reason = tooLarge ? 'Request Header Fields Too Large' : timeout ? 'Request Timeout' : 'Bad Request';
    const body = JSON.stringify(ooe.outcome);
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/fhir+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
