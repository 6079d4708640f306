/**
 * The constants the official MCP conformance suite (@modelcontextprotocol/conformance 0.2.0-alpha.12)
 * expects from its fixtures: texts, URIs, prompt and resource shapes, exactly as its scenario
 * descriptions spell them. Test-only: served by `bulwark serve --profile conformance` and nothing else.
 */

/** A 1×1 PNG (tools-call-image, resources-read-binary, prompts-get-with-image). */
export const PNG_1X1_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';

/** A valid WAV file of 8 silent 8-bit mono samples at 8 kHz (tools-call-audio). */
export const WAV_SILENCE_BASE64 = silentWav(8).toString('base64');

function silentWav(samples: number): Buffer {
  const b = Buffer.alloc(44 + samples);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + samples, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(16, 16); // PCM header size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(8000, 24); // sample rate
  b.writeUInt32LE(8000, 28); // byte rate
  b.writeUInt16LE(1, 32); // block align
  b.writeUInt16LE(8, 34); // bits per sample
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(samples, 40);
  b.fill(0x80, 44); // 8-bit PCM silence is the midpoint
  return b;
}

export interface FixtureResource {
  readonly uri: string;
  readonly name: string;
  readonly description: string;
  readonly mimeType: string;
  readonly text?: string;
  readonly blob?: string;
}

/** Direct resources (resources/list, resources/read). The first one is what `caching` reads. */
export const RESOURCES: readonly FixtureResource[] = [
  {
    uri: 'test://static-text',
    name: 'static-text',
    description: 'A static text resource for conformance testing',
    mimeType: 'text/plain',
    text: 'This is the content of the static text resource.',
  },
  { uri: 'test://static-binary', name: 'static-binary', description: 'A static binary resource (a 1x1 PNG)', mimeType: 'image/png', blob: PNG_1X1_BASE64 },
  {
    uri: 'test://watched-resource',
    name: 'watched-resource',
    description: 'A resource clients may subscribe to',
    mimeType: 'text/plain',
    text: 'Watched resource content.',
  },
];

export const RESOURCE_TEMPLATES = [
  {
    uriTemplate: 'test://template/{id}/data',
    name: 'template-data',
    description: 'A resource template whose {id} is substituted into the content',
    mimeType: 'application/json',
  },
] as const;

const TEMPLATE_URI = /^test:\/\/template\/([A-Za-z0-9_.~-]{1,64})\/data$/;

/** The contents of a resource by URI (direct or from the template), or undefined when none matches. */
export function readResource(uri: string): Record<string, unknown>[] | undefined {
  const direct = RESOURCES.find((r) => r.uri === uri);
  if (direct) {
    return [
      {
        uri,
        mimeType: direct.mimeType,
        ...(direct.text === undefined ? {} : { text: direct.text }),
        ...(direct.blob === undefined ? {} : { blob: direct.blob }),
      },
    ];
  }
  const m = TEMPLATE_URI.exec(uri);
  if (m) {
    const id = m[1];
    return [{ uri, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }];
  }
  return undefined;
}

export interface FixturePrompt {
  readonly name: string;
  readonly description: string;
  readonly arguments?: readonly { readonly name: string; readonly description: string; readonly required: boolean }[];
}

export const PROMPTS: readonly FixturePrompt[] = [
  { name: 'test_simple_prompt', description: 'A simple prompt without arguments' },
  {
    name: 'test_prompt_with_arguments',
    description: 'A prompt with two required arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt that embeds a resource',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
  },
  { name: 'test_prompt_with_image', description: 'A prompt with image content' },
  { name: 'test_input_required_result_prompt', description: 'A prompt that needs the client to answer an elicitation first (2026-07-28)' },
];

/** completion/complete candidates for test_prompt_with_arguments (the suite only checks the shape). */
export const COMPLETION_VALUES: Readonly<Record<string, readonly string[]>> = {
  arg1: ['paris', 'park', 'party'],
  arg2: ['hello', 'help', 'world'],
};
