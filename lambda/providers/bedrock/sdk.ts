let sdk: Promise<typeof import('@aws-sdk/client-bedrock-runtime')> | undefined;

/** The Bedrock SDK, loaded on the first Bedrock call: a gateway without Bedrock routes never pays for it at start. */
export function bedrockSdk(): Promise<typeof import('@aws-sdk/client-bedrock-runtime')> {
  return (sdk ??= import('@aws-sdk/client-bedrock-runtime'));
}
