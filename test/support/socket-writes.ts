import { Socket } from 'node:net';

type Chunk = { chunk: unknown; encoding?: BufferEncoding };
type SocketInternals = { _write: (chunk: unknown, encoding: BufferEncoding, cb: unknown) => void; _writev: (chunks: Chunk[], cb: unknown) => void };

const text = (chunk: unknown, encoding?: BufferEncoding) => (typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk as Uint8Array)).toString('latin1');

/**
 * Calls `onWrite` with what this process's sockets hand to the kernel, one string a system call:
 * `_write` and `_writev` are where a socket's buffered writes go out (corked writes together).
 * Returns the function that stops it.
 */
export function watchSocketWrites(onWrite: (written: string) => void): () => void {
  const proto = Socket.prototype as unknown as SocketInternals;
  const { _write: write, _writev: writev } = proto;
  proto._write = function (this: Socket, chunk: unknown, encoding: BufferEncoding, cb: unknown) {
    onWrite(text(chunk, encoding));
    return write.call(this, chunk, encoding, cb);
  };
  proto._writev = function (this: Socket, chunks: Chunk[], cb: unknown) {
    onWrite(chunks.map((c) => text(c.chunk, c.encoding)).join(''));
    return writev.call(this, chunks, cb);
  };
  return () => Object.assign(proto, { _write: write, _writev: writev });
}
