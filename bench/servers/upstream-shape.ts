/** The stand-in upstream's stream: this many content chunks, this far apart. */
export const CHUNKS = 20;
export const GAP_MS = 25;
