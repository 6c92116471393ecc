import type { TokenRules } from '../catalog';

/**
 * Tokens one image costs, by the model's rule (docs/PROVIDERS.md, "Images"). Inline images
 * (`data:` URLs) are measured from their header; an image behind a URL counts as the largest
 * image the rule allows, so the hold stays an upper bound.
 *
 * - OpenAI's tiles: `detail: low` is `base`; otherwise the image is fitted into 2048×2048, its
 *   shortest side scaled down to 768, and each 512-px tile costs `tile` more.
 * - Anthropic: width × height / 750 after the long edge is fitted to 1,568 px, at most 1,600.
 */
export function imageTokens(url: string, detail: 'auto' | 'low' | 'high' | undefined, rule: TokenRules['image']): number {
  if (rule.kind === 'tiles' && detail === 'low') return rule.base;
  const size = inlineImageSize(url);
  if (rule.kind === 'anthropic') {
    if (!size) return ANTHROPIC_MAX_TOKENS;
    const scale = Math.min(1, ANTHROPIC_MAX_EDGE / Math.max(size.width, size.height));
    return Math.min(ANTHROPIC_MAX_TOKENS, Math.ceil((size.width * scale * (size.height * scale)) / 750));
  }
  return rule.base + rule.tile * tiles(size ?? { width: 2048, height: 768 });
}

const ANTHROPIC_MAX_EDGE = 1568;
const ANTHROPIC_MAX_TOKENS = 1600;

function tiles({ width, height }: { width: number; height: number }): number {
  let w = width;
  let h = height;
  const fit = Math.min(1, 2048 / Math.max(w, h));
  w *= fit;
  h *= fit;
  const shortest = Math.min(w, h);
  if (shortest > 768) {
    w *= 768 / shortest;
    h *= 768 / shortest;
  }
  return Math.ceil(w / 512) * Math.ceil(h / 512);
}

/** Enough of the image for its header; a JPEG's size sits after its metadata segments. */
const HEADER_BASE64_CHARS = 256 * 1024;

type ImageSize = typeof import('image-size').imageSize;
let imageSizeOf: ImageSize | undefined;

/** image-size, loaded on the first inline image rather than at init (the chat function's cold start). */
function imageSize(input: Uint8Array): ReturnType<ImageSize> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy load, synchronous as its callers are
  imageSizeOf ??= (require('image-size') as typeof import('image-size')).imageSize;
  return imageSizeOf(input);
}

function inlineImageSize(url: string): { width: number; height: number } | undefined {
  if (!url.startsWith('data:')) return undefined;
  const comma = url.indexOf(',');
  if (comma < 0 || !url.slice(0, comma).endsWith(';base64')) return undefined;
  const end = Math.min(url.length, comma + 1 + HEADER_BASE64_CHARS);
  try {
    const { width, height } = imageSize(Buffer.from(url.slice(comma + 1, end - ((end - comma - 1) % 4)), 'base64'));
    return width > 0 && height > 0 ? { width, height } : undefined;
  } catch {
    return undefined;
  }
}
