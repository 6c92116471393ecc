import { App, Stack } from 'aws-cdk-lib';
import { bedrockGrants, catalogProviders, validateCatalog, type ItapiCatalog } from '../../lib';

/** Embedding models in a deploy-time catalog: accepted without output fields, and their Bedrock models granted. */
const catalog: ItapiCatalog = {
  models: {
    'titan-embed-v2': {
      kind: 'embedding',
      owned_by: 'amazon',
      pricing: { input_per_mtok: 0.02 },
      context_window: 8192,
      dimensions: 1024,
      routes: [{ provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', region: 'us-east-1' }],
    },
    'cohere-embed-english': {
      kind: 'embedding',
      owned_by: 'cohere',
      pricing: { input_per_mtok: 0.1 },
      context_window: 512,
      routes: [{ provider: 'bedrock', model: 'cohere.embed-english-v3' }],
    },
  },
};

describe('a catalog with embedding models', () => {
  it('passes the stack’s checks without output price or limit', () => {
    expect(() => validateCatalog(catalog)).not.toThrow();
    expect(catalogProviders(catalog)).toEqual(['bedrock']);
  });

  it('grants InvokeModel on each embedding model’s foundation model, in the route’s region or the stack’s', () => {
    const stack = new Stack(new App(), 'EmbeddingGrants', { env: { account: '111122223333', region: 'eu-west-1' } });
    const arns = JSON.stringify(stack.resolve(bedrockGrants(stack, catalog).direct));
    expect(arns).toMatch(/:bedrock:us-east-1::foundation-model\/amazon\.titan-embed-text-v2:0/);
    expect(arns).toMatch(/:bedrock:eu-west-1::foundation-model\/cohere\.embed-english-v3/);
  });
});
