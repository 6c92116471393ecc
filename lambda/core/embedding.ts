import type { WireName } from './prompt';

/** An embeddings request in one shape: one vector is answered per input, in order. */
export interface EmbeddingCall {
  model: string;
  inputs: { kind: 'text'; texts: string[] } | { kind: 'tokens'; tokens: number[][] };
  dimensions?: number;
  /** The client's wish; providers answer floats, the endpoint encodes. */
  encodingFormat?: 'float' | 'base64';
  user?: string;
  /** Fields the model does not name (Cohere's `input_type`…), for a provider of the same wire. */
  extensions?: { wire: WireName; fields: Record<string, unknown> };
}

export interface EmbeddingAnswer {
  model: string;
  vectors: number[][];
  /** Input tokens as the provider reported them (embeddings bill input only). */
  inputTokens: number;
}
