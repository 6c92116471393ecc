/**
 * A create that found its item already there. Callers outside store/ test for this instead of
 * DynamoDB's ConditionalCheckFailedException, which stays behind the store's wall.
 */
export class ItemExistsError extends Error {
  override name = 'ItemExistsError';

  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`The ${kind} '${id}' already exists.`);
  }
}
