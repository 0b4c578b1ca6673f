import { EntityDecoder } from '@nodable/entities';
import { XMLParser } from 'fast-xml-parser';
import { SyntaxValidator } from 'fast-xml-validator';

/**
 * The little XML this package reads itself: the loginTicketRequest/Response documents WSAA wraps
 * in a string, and (in the simulator) the SOAP requests it answers. soap parses the envelopes the
 * clients receive. fast-xml-parser checks well-formedness and decodes entities; this module turns
 * its output into a small tree whose element names are reduced to their local part.
 */
export interface XmlElement {
  /** Local name: `soap:Body` is `Body`. */
  name: string;
  /** As written, prefixes included (`xmlns:soap`, `xml:lang`); values entity-decoded. */
  attributes: Readonly<Record<string, string>>;
  children: XmlElement[];
  /** The element's own character data (CDATA included), concatenated, entities decoded. */
  text: string;
}

/**
 * The predefined entities and character references, nothing declared: fast-xml-parser hands every
 * DOCTYPE's entities to `addInputEntities`, so refusing there rules out entity expansion attacks.
 * (Its default decoder would also leave `&#233;` undecoded unless HTML entities are switched on.)
 */
class PredefinedEntitiesOnly extends EntityDecoder {
  override addInputEntities(): never {
    throw new Error('declarations are not accepted (<!DOCTYPE>)');
  }
}

/** Keys of fast-xml-parser's ordered output besides the element name. */
const ATTRIBUTES = ':@';
const TEXT = '#text';

const parser = new XMLParser({
  // Every element becomes an entry of its parent's list, so one <AlicIva> reads like three.
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  // Tokens, CAE codes and CUITs look like numbers but must stay the exact text AFIP sent.
  parseTagValue: false,
  parseAttributeValue: false,
  // childText trims; an element's own text keeps its whitespace.
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  entityDecoder: new PredefinedEntitiesOnly(),
  // removeNSPrefix is not used: it also drops xmlns:* attributes, which tell SOAP 1.1 from 1.2.
});

/** fast-xml-parser's ordered node: `{ [name]: children, ':@'?: attributes }` or `{ '#text': text }`. */
type OrderedNode = Readonly<Record<string, unknown>>;

/** Parses a document into its root element; throws on anything that is not well-formed. */
export function parseXml(xml: string): XmlElement {
  let nodes: unknown;
  try {
    // Validated first (fast-xml-parser's own validation flag is deprecated for this package), so
    // mismatched tags, a second root or a bare `&` are errors.
    SyntaxValidator.validate(xml);
    nodes = parser.parse(xml);
  } catch (error) {
    throw new Error(`XML: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const { children, text } = readContent(nodes);
  const [root, ...others] = children;
  if (!root) throw new Error('XML: document is empty');
  // The validator misses a second root after a self-closing one (<a/><b/>). Text after a
  // self-closing root never reaches the output, so that one stays unnoticed (and unread).
  if (others.length > 0 || text.trim() !== '') throw new Error('XML: content outside the root element');
  return root;
}

function readContent(nodes: unknown): { children: XmlElement[]; text: string } {
  if (!Array.isArray(nodes)) throw new Error('XML: unexpected parser output');
  const content = { children: [] as XmlElement[], text: '' };
  for (const node of nodes as OrderedNode[]) {
    for (const [key, value] of Object.entries(node)) {
      if (key === TEXT) content.text += String(value);
      else if (key !== ATTRIBUTES) {
        const { children, text } = readContent(value);
        content.children.push({ name: localName(key), attributes: readAttributes(node[ATTRIBUTES]), children, text });
      }
    }
  }
  return content;
}

function readAttributes(attributes: unknown): Record<string, string> {
  if (attributes === undefined) return {};
  return Object.fromEntries(Object.entries(attributes as Record<string, unknown>).map(([name, value]) => [name, String(value)]));
}

export function childElement(parent: XmlElement | undefined, name: string): XmlElement | undefined {
  return parent?.children.find((child) => child.name === name);
}

export function childElements(parent: XmlElement | undefined, name: string): XmlElement[] {
  return parent?.children.filter((child) => child.name === name) ?? [];
}

/** Trimmed text of the first child called `name`; undefined when there is none. */
export function childText(parent: XmlElement | undefined, name: string): string | undefined {
  return childElement(parent, name)?.text.trim();
}

/** Escapes text for an element body or a double-quoted attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[char] ?? ''};`);
}

function localName(qualified: string): string {
  return qualified.slice(qualified.indexOf(':') + 1);
}
