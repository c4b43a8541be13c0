// A small RFC 4180 CSV parser (no dependencies).
//
// - Fields are separated by ",". Records end with CRLF, LF or a lone CR;
//   a line break after the last record is optional.
// - A field that starts with `"` is quoted: it runs to the next `"` that is
//   not doubled; `""` inside it is one `"`; it may hold commas and line
//   breaks. After the closing quote only a comma, a line break or the end
//   may follow.
// - A `"` inside an unquoted field is an error (this is what rejects JSON
//   posted as CSV early), as is a quoted field left open at the end.
// - Fields are returned as written: no trimming, no type conversion.
// - A leading UTF-8 byte order mark is skipped. Blank lines (a record that
//   is a single empty unquoted field) are skipped.
//
// parseCsv(text) returns {rows: string[][]} or {error: "message"}.
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false; // the current field started with a quote
  let i = 0;
  const n = text.length;
  let line = 1;
  if (n > 0 && text.charCodeAt(0) === 0xfeff) {
    i = 1;
  }
  let fieldStart = true;

  function endRecord() {
    row.push(field);
    // A blank line: one empty field that was not quoted.
    if (!(row.length === 1 && row[0] === "" && !quoted)) {
      rows.push(row);
    }
    row = [];
    field = "";
    quoted = false;
    fieldStart = true;
  }

  while (i < n) {
    const c = text[i];
    if (fieldStart && c === '"') {
      // Quoted field: read to the closing quote.
      quoted = true;
      fieldStart = false;
      i++;
      const startLine = line;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) {
          return { error: "unterminated quoted field starting on line " + startLine };
        }
        const chunk = text.slice(i, q);
        field += chunk;
        line += countLineBreaks(chunk);
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      // Only a separator, a line break or the end may follow.
      if (i < n && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r") {
        return { error: "unexpected character after a quoted field on line " + line };
      }
      continue;
    }
    fieldStart = false;
    if (c === ",") {
      row.push(field);
      field = "";
      quoted = false;
      fieldStart = true;
      i++;
    } else if (c === "\r" || c === "\n") {
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      endRecord();
      line++;
    } else if (c === '"') {
      return { error: "unexpected quote in an unquoted field on line " + line };
    } else {
      // The rest of an unquoted field, up to a comma, a line break or a
      // quote (which the branches above handle).
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 44 || d === 10 || d === 13 || d === 34) {
          break;
        }
        j++;
      }
      field += text.slice(i, j);
      i = j;
    }
  }
  // The last record, unless the text ended with a line break (or was empty).
  if (!fieldStart || row.length > 0) {
    endRecord();
  }
  return { rows: rows };
}

// countLineBreaks counts CRLF, LF and lone CR in s (for error messages).
function countLineBreaks(s) {
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || (c === 13 && s.charCodeAt(i + 1) !== 10)) {
      k++;
    }
  }
  return k;
}

// parseCsvObjects parses CSV whose first record is a header naming exactly
// the columns `required` (in any order, each once, nothing else) and
// returns {records: [{column: value}]} or {error}. Every record must have
// as many fields as the header.
export function parseCsvObjects(text, required) {
  const parsed = parseCsv(text);
  if (parsed.error) {
    return { error: parsed.error };
  }
  const rows = parsed.rows;
  if (rows.length === 0) {
    return { error: "no header" };
  }
  const header = rows[0];
  const seen = {};
  for (const name of header) {
    if (required.indexOf(name) < 0) {
      return { error: "unexpected column '" + name + "'; the header must be " + required.join(",") };
    }
    if (seen[name]) {
      return { error: "duplicate column '" + name + "'" };
    }
    seen[name] = true;
  }
  for (const name of required) {
    if (!seen[name]) {
      return { error: "missing column '" + name + "'; the header must be " + required.join(",") };
    }
  }
  const records = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== header.length) {
      return { error: "record " + r + " has " + row.length + " fields, the header has " + header.length };
    }
    const obj = {};
    for (let j = 0; j < header.length; j++) {
      obj[header[j]] = row[j];
    }
    records.push(obj);
  }
  return { records: records };
}
