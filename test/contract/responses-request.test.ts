// parseCreateResponseRequest: an input item's type is looked up among the kinds the gateway reads
// by own key, so a type named as an Object.prototype member is a kind no route runs, as any other
// unknown type (it made the schema throw a TypeError, a 500).
import { parseCreateResponseRequest } from '../../lambda/contract/responses';

describe('parseCreateResponseRequest', () => {
  it.each(['toString', 'constructor', 'hasOwnProperty', 'valueOf'])("takes an item of type '%s' as a kind no route runs", (type) => {
    const request = parseCreateResponseRequest({ model: 'gpt-5', input: [{ type }, { role: 'user', content: 'hi' }] });
    expect(request.input).toEqual([{ type: 'unsupported', itemType: type }, { type: 'message', role: 'user', content: 'hi' }]);
  });
});
