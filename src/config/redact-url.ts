/** A scheme and `//`, as URLs that carry credentials (postgres://, redis://, https://) start. */
const AUTHORITY = /([a-z][a-z0-9+.-]*:\/\/)[^/\s]*@/gi;
const ONE_URL = /^([a-z][a-z0-9+.-]*):\/\/\S*$/i;

/**
 * Text fit to print, with no URL's password in it. Text that is one URL (a connection URL shown
 * as a label) keeps its user name and shows `***` for the password, or only its scheme when it
 * does not parse; in other text (an error message quoting URLs) each URL's userinfo becomes `***`.
 */
export function redactUrl(text: string): string {
  const one = ONE_URL.exec(text);
  if (one) {
    try {
      const u = new URL(text);
      if (u.password) u.password = '***';
      return u.toString();
    } catch {
      return `${one[1]}:(unparseable url)`;
    }
  }
  return text.replace(AUTHORITY, '$1***@');
}
