/**
 * The little XML this package reads by hand: the loginTicketRequest/Response documents WSAA wraps
 * in a string, and (in the simulator) the SOAP requests it answers. soap parses the envelopes the
 * clients receive; neither AFIP document needs DTDs, entities beyond the predefined ones, or
 * namespace resolution, so element names are reduced to their local part.
 */
export interface XmlElement {
  /** Local name: `soap:Body` is `Body`. */
  name: string;
  attributes: Readonly<Record<string, string>>;
  children: XmlElement[];
  /** The element's own character data (CDATA included), concatenated, entities decoded. */
  text: string;
}

const TOKEN =
  /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<!([^>]*)>|<\/([^\s>]+)\s*>|<([^\s/>!?]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)|</g;
const ATTRIBUTE = /([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
const ENTITY = /&(?:#(\d+)|#x([0-9a-fA-F]+)|(lt|gt|amp|quot|apos));|&/g;
const NAMED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Parses a document into its root element; throws on anything that is not well-formed enough to trust. */
export function parseXml(xml: string): XmlElement {
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  for (const match of xml.matchAll(TOKEN)) {
    const [token, cdata, declaration, closing, opening, attributes, selfClosing, text] = match;
    const current = stack.at(-1);
    if (cdata !== undefined) {
      if (!current) throw new Error('XML: character data outside the root element');
      current.text += cdata;
    } else if (declaration !== undefined) {
      // DOCTYPE and friends: refusing them rules out entity expansion attacks.
      throw new Error(`XML: declarations are not accepted (<!${declaration.slice(0, 20)}>)`);
    } else if (closing !== undefined) {
      if (!current || current.name !== localName(closing)) throw new Error(`XML: unexpected </${closing}>`);
      stack.pop();
    } else if (opening !== undefined) {
      if (root && stack.length === 0) throw new Error('XML: more than one root element');
      const element: XmlElement = { name: localName(opening), attributes: readAttributes(attributes ?? ''), children: [], text: '' };
      if (current) current.children.push(element);
      else root = element;
      if (selfClosing !== '/') stack.push(element);
    } else if (text !== undefined) {
      if (current) current.text += decodeEntities(text);
      else if (text.trim() !== '') throw new Error('XML: text outside the root element');
    } else if (token === '<') {
      throw new Error('XML: malformed tag');
    }
    // Comments and processing instructions (the <?xml?> declaration) carry nothing we read.
  }
  if (!root || stack.length > 0) throw new Error('XML: document is empty or not closed');
  return root;
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

function readAttributes(source: string): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const [, name, doubleQuoted, singleQuoted] of source.matchAll(ATTRIBUTE)) {
    if (name !== undefined) attributes[name] = decodeEntities(doubleQuoted ?? singleQuoted ?? '');
  }
  return attributes;
}

function decodeEntities(text: string): string {
  return text.replace(ENTITY, (entity, decimal?: string, hex?: string, named?: string) => {
    if (decimal !== undefined) return String.fromCodePoint(Number(decimal));
    if (hex !== undefined) return String.fromCodePoint(Number.parseInt(hex, 16));
    if (named !== undefined) return NAMED_ENTITIES[named] ?? entity;
    throw new Error('XML: bare "&" or unknown entity');
  });
}
