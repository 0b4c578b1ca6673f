import { childElement, childElements, childText, escapeXml, parseXml } from './xml';

describe('parseXml', () => {
  it('reduces prefixed element names to their local part and keeps attribute names as written', () => {
    const envelope = parseXml(
      '<?xml version="1.0" encoding="utf-8"?>' +
        '<soap12:Envelope xmlns:soap12="http://www.w3.org/2003/05/soap-envelope" xmlns:ns1="http://ar.gov.afip.dif.FEV1/">' +
        '<soap12:Header/><soap12:Body><ns1:FECompUltimoAutorizado><ns1:Auth><ns1:Cuit>20123456786</ns1:Cuit></ns1:Auth>' +
        '</ns1:FECompUltimoAutorizado></soap12:Body></soap12:Envelope>',
    );
    expect(envelope.name).toBe('Envelope');
    expect(envelope.attributes).toEqual({
      'xmlns:soap12': 'http://www.w3.org/2003/05/soap-envelope',
      'xmlns:ns1': 'http://ar.gov.afip.dif.FEV1/',
    });
    const operation = childElement(envelope, 'Body')?.children[0];
    expect(operation?.name).toBe('FECompUltimoAutorizado');
    expect(childText(childElement(operation, 'Auth'), 'Cuit')).toBe('20123456786');
  });

  it('decodes entities once per document, so an escaped loginTicketResponse parses in a second pass', () => {
    const inner =
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<loginTicketResponse version="1.0"><header>' +
      '<destination>SERIALNUMBER=CUIT 20123456786, CN=Tom &amp; Jerry</destination>' +
      '<uniqueId>0042</uniqueId></header><credentials><token>PD94bWw+PC9zc28+</token><sign>c2lnbg==</sign></credentials>' +
      '</loginTicketResponse>';
    const outer = parseXml(`<loginCmsReturn>${escapeXml(inner)}</loginCmsReturn>`);
    expect(outer.text).toBe(inner);

    const ticket = parseXml(outer.text);
    expect(ticket).toMatchObject({ name: 'loginTicketResponse', attributes: { version: '1.0' } });
    expect(childText(childElement(ticket, 'header'), 'destination')).toBe('SERIALNUMBER=CUIT 20123456786, CN=Tom & Jerry');
    expect(childText(childElement(ticket, 'credentials'), 'token')).toBe('PD94bWw+PC9zc28+');
  });

  it('decodes character references and attribute entities but leaves CDATA as written', () => {
    const root = parseXml('<a note="1 &lt; 2 &quot;ok&quot;">Se&#241;al &#xE9; &apos;x&apos; <![CDATA[<b>&amp;</b>]]></a>');
    expect(root.attributes).toEqual({ note: '1 < 2 "ok"' });
    expect(root.text).toBe("Señal é 'x' <b>&amp;</b>");
  });

  it('keeps numeric-looking text exactly as sent', () => {
    const root = parseXml('<r><CAE>71234567890123</CAE><uniqueId>0042</uniqueId><n> 1e5 </n><Cuit>20123456786</Cuit></r>');
    expect(childText(root, 'CAE')).toBe('71234567890123');
    expect(childText(root, 'uniqueId')).toBe('0042');
    expect(childElement(root, 'n')?.text).toBe(' 1e5 ');
    expect(childText(root, 'n')).toBe('1e5');
    expect(childText(root, 'Cuit')).toBe('20123456786');
  });

  it('reads one and several repeated elements the same way, in document order', () => {
    const one = parseXml('<Iva><AlicIva><Id>5</Id></AlicIva></Iva>');
    const three = parseXml('<Iva><AlicIva><Id>5</Id></AlicIva><Other/><AlicIva><Id>4</Id></AlicIva>text<AlicIva><Id>6</Id></AlicIva></Iva>');
    expect(childElements(one, 'AlicIva').map((rate) => childText(rate, 'Id'))).toEqual(['5']);
    expect(childElements(three, 'AlicIva').map((rate) => childText(rate, 'Id'))).toEqual(['5', '4', '6']);
    expect(three.children.map((child) => child.name)).toEqual(['AlicIva', 'Other', 'AlicIva', 'AlicIva']);
    expect(three.text).toBe('text');
  });

  it('answers undefined (or nothing) for a missing element, and empty text for an empty one', () => {
    const root = parseXml('<header><empty/><blank>  </blank></header>');
    expect(childElement(root, 'missing')).toBeUndefined();
    expect(childText(root, 'missing')).toBeUndefined();
    expect(childElements(root, 'missing')).toEqual([]);
    expect(childText(childElement(root, 'missing'), 'deeper')).toBeUndefined();
    expect(childText(root, 'empty')).toBe('');
    expect(childText(root, 'blank')).toBe('');
  });

  it.each([
    ['an empty document', ''],
    ['text only', 'hello'],
    ['an unclosed element', '<a><b></b>'],
    ['mismatched tags', '<soap:Body></soapenv:Body>'],
    ['two root elements', '<a></a><b></b>'],
    ['a second root after a self-closing one', '<a/><b/>'],
    ['text after the root', '<a></a>trailing'],
    ['a bare ampersand', '<a>Tom & Jerry</a>'],
    ['a DOCTYPE', '<!DOCTYPE a><a/>'],
    ['an entity declaration', '<!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><a>&x;&x;</a>'],
  ])('refuses %s', (_what, xml) => {
    expect(() => parseXml(xml)).toThrow(/^XML: /);
  });
});
