import { randomBytes } from 'node:crypto';

const RESPONSE_ID = /^resp_([0-9a-f]{48})$/;
const ITEM_ID = /^[a-z]+_([0-9a-f]{48})_[io]\d+$/;

/**
 * A response's ids. Every item id itapi gives out carries its response's id, so an
 * `item_reference` finds its stored response with one read and no index of items.
 */
export class ResponseIds {
  readonly responseId: string;
  private readonly hex: string;

  constructor(hex: string = randomBytes(24).toString('hex')) {
    this.hex = hex;
    this.responseId = `resp_${hex}`;
  }

  /** The ids of an existing response (its items' ids are a function of its own). */
  static of(responseId: string): ResponseIds {
    const match = RESPONSE_ID.exec(responseId);
    if (!match) throw new Error(`not an itapi response id: ${responseId.slice(0, 80)}`);
    return new ResponseIds(match[1]);
  }

  /** The id of output item `index` (`rs_…`, `msg_…`, `fc_…`). */
  output(prefix: 'rs' | 'msg' | 'fc', index: number): string {
    return `${prefix}_${this.hex}_o${index}`;
  }

  /** The id given to input item `index` when the client sent it without one. */
  input(prefix: 'rs' | 'msg' | 'fc' | 'fco', index: number): string {
    return `${prefix}_${this.hex}_i${index}`;
  }
}

/** Whether a string is a well-formed itapi response id (anything else cannot exist). */
export function isResponseId(id: string): boolean {
  return RESPONSE_ID.test(id);
}

/** The response an itapi item id belongs to, or undefined for ids itapi did not give out. */
export function responseIdOfItem(itemId: string): string | undefined {
  const match = ITEM_ID.exec(itemId);
  return match ? `resp_${match[1]}` : undefined;
}
