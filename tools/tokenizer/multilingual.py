"""The hand-written part of the tokenizer corpus: scripts, emoji, digits, whitespace and the
other cases where byte-level BPE tokenizers tend to disagree. Escapes keep the invisible
characters (CRLF, NFD accents, NBSP, zero-width joiners) visible in this source."""

ZH = """机器学习是人工智能的一个分支。它使计算机能够在没有明确编程的情况下从数据中学习。
深度学习使用多层神经网络来提取越来越抽象的特征，例如图像中的边缘、纹理和物体。
今天天气很好，我们去公园散步吧！你想喝咖啡还是茶？我更喜欢绿茶，因为它的味道清淡。
北京是中华人民共和国的首都，有三千多年的历史。故宫、长城和天坛每年吸引数百万游客。
“离散视觉标记”可以让语言模型既能理解图像，也能生成图像；这就是统一多模态模型的思路。
数字：一二三四五六七八九十，百分之九十九点九，２０２６年１１月２７日，ＡＢＣ全角字母。
红色的圆形在左上角，蓝色的方形在右下角，绿色的三角形在中间，黄色的星星很小。"""

JA = """吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。
東京の天気は晴れのち曇り、最高気温は１８度の予想です。傘を持って行ったほうがいいでしょう。
カタカナとひらがなと漢字が混ざった文章は、トークナイザーにとって難しい例です。
ｶﾀｶﾅ（半角）も、ＡＩ（全角英字）も、①②③の丸数字も、よく使われます。
「画像を説明してください」と頼むと、モデルは『赤い丸が左上にあります』と答えました。
コンピューターは一秒間に何十億回もの計算を行うことができますが、猫の気持ちはわかりません。"""

KO = """안녕하세요! 오늘은 날씨가 정말 좋네요. 점심으로 김치찌개를 먹을까요, 아니면 비빔밥을 먹을까요?
한국어는 한글이라는 고유한 문자를 사용하며, 세종대왕이 1443년에 창제했습니다.
인공지능 모델은 이미지를 이해하고 생성할 수 있습니다. 빨간 원이 왼쪽 위에 있습니다.
ㄱㄴㄷㄹ ㅏㅑㅓㅕ 같은 자모도 따로 쓰일 수 있고, 띄어쓰기가없는긴문장도자주보입니다."""

RU = """Съешь же ещё этих мягких французских булок, да выпей чаю.
Машинное обучение — это раздел искусственного интеллекта, изучающий методы построения алгоритмов.
В 2026 году модели, которые умеют и читать, и рисовать изображения, стали обычным делом.
«Ёлка» и «елка» — это одно и то же слово? Да, но буква Ё часто заменяется на Е.
ПРОПИСНЫЕ БУКВЫ, строчные буквы, и СмЕшАнНыЙ регистр; Щука, Юла, Яблоко, Эхо.
Красный круг в левом верхнем углу, синий квадрат в центре, зелёный треугольник справа."""

AR = """مرحبا بالعالم! كيف حالك اليوم؟ أتمنى أن تكون بخير.
الذكاء الاصطناعي هو فرع من علوم الحاسوب يهتم بصنع آلات ذكية تتصرف كالبشر.
اللُّغَةُ العَرَبِيَّةُ جَمِيلَةٌ، وَتُكْتَبُ مِنَ اليَمِينِ إِلَى اليَسَارِ.
الأرقام العربية: ٠١٢٣٤٥٦٧٨٩، والأرقام الغربية: 0123456789، في نفس السطر.
دائرة حمراء في الزاوية العليا اليسرى ومربع أزرق في المنتصف."""

OTHER = """Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. ΑΒΓΔ αβγδ ως.
עברית: שלום עולם! זה משפט בעברית, שנכתב מימין לשמאל. 123 מספרים באמצע.
हिन्दी: नमस्ते दुनिया! मशीन लर्निंग कृत्रिम बुद्धिमत्ता की एक शाखा है। क्षत्रिय ज्ञान श्री।
ภาษาไทย: สวัสดีครับ วันนี้อากาศดีมาก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ
Tiếng Việt: Tôi yêu tiếng Việt, một ngôn ngữ có nhiều dấu thanh: à á ả ã ạ ằ ắ ẳ ẵ ặ.
Türkçe: İstanbul'da ılık bir gün; IĞDIR, ığdır, Şişli, çiçek, ÖĞRENCİ.
Deutsch: Größere Übungen für Maßnahmen; STRAẞE, Straße, Äpfel, Öl, Übermut.
Français: L'élève a mangé une crème brûlée à côté de l'hôtel; Ça va? Où ça?
Español: ¿Dónde está la biblioteca? ¡Qué día más bonito! El niño comió piña."""

EMOJI = """Emoji: 😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘
Families and ZWJ: 👨‍👩‍👧‍👦 👩‍👩‍👧 👨‍👨‍👦‍👦 🧑‍🤝‍🧑 👩‍❤️‍💋‍👨 🏳️‍🌈 🏳️‍⚧️ 🏴‍☠️ 👁️‍🗨️
Skin tones: 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 👩🏽‍💻 🧑🏿‍🚀 👨🏼‍🍳 🙋🏾‍♀️
Flags: 🇫🇷 🇯🇵 🇺🇸 🇨🇳 🇰🇷 🇷🇺 🇸🇦 🇧🇷 🇮🇳 🇩🇪🇬🇧🇪🇸 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿
Keycaps and symbols: 1️⃣ 2️⃣ #️⃣ *️⃣ ©️ ®️ ™️ ⚠️ ❤️ ♻️ ✔️ ✖️ ➡️ ⬆️
Mixed: the cat 🐈 sat on the mat 🧶 and said 🗣️ "meow"🎉🎉🎉!!!"""

DIGITS = """Digits: 0 1 12 123 1234 12345 123456 1234567 12345678901234567890
Numbers: 3.14159265358979, -273.15, 6.022e23, 1,000,000.00, 1_000_000, 0xDEADBEEF, 0b101010, 0o755
Dates and times: 2026-11-27T14:04:56Z, 27/11/2026, 11-27-26, 14:05:06.789, 1h30m, 90s
Phone: +1 (555) 123-4567, +33 6 12 34 56 78; IPv4 192.168.0.1:8080; IPv6 2001:db8::ff00:42:8329
Versions: v0.17.4, go1.26.8, Python 3.11.7, CUDA 12.4, sm_90, 1.0.0-rc.1+build.5
Fullwidth ０１２３４５６７８９ and superscripts x² y³ ½ ¼ ¾ ₀₁₂ ⅓ and roman Ⅳ Ⅻ"""

CONTRACTIONS = """Contractions: I'm you're he's she'd we'll they've it's can't won't shouldn't y'all o'clock
Upper case: I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S CAN'T WON'T; Mixed: I'M i'M We'Ll
Quotes: 'single' "double" `backtick` ‘curly’ “curly” «guillemets» „low“ ‚low‘
Apostrophes in names: O'Brien, D'Angelo, rock'n'roll, '90s, the dogs' bowls, James's book"""

PUNCT = """Repeated punctuation: ==== ======== ================ ---- ---------- ______ ******
!!!!!! ?????? ...... ,,,, ;;;; :::: //// \\\\\\\\ |||| ~~~~ #### $$$$ %%%% ^^^^ &&&& (((( )))) [[[[ ]]]]
Markdown: # Title\n## Section\n- item one\n- item two\n1. first\n> quote\n```go\nfunc main() {}\n```
Table: | a | b |\n|---|---|\n| 1 | 2 |
Arrows and math: -> => <= >= != == === !== && || :: ... ..= <<= >>= ** // += -= *= /=
Math symbols: ∀x∈ℝ, ∃y: x² + y² ≤ 1; ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ π/4 ± ε; A ⊆ B ∪ C ∩ D; ¬p ∧ q ∨ r → s ↔ t"""

WHITESPACE = ("Whitespace runs: a  b   c    d     e      f       g\n"
              "Tabs:\tone\t\ttwo\t\t\tthree\n"
              "\t\tindented with tabs\n"
              "        indented with eight spaces\n"
              "trailing spaces   \n"
              "   \n"
              "\n\n\n"
              "CRLF line one\r\n"
              "CRLF line two\r\n"
              "\r\n"
              "mixed \t \t spaces and tabs\n"
              "non-breaking\u00a0space, narrow\u202fno-break, ideographic\u3000space, em\u2003space\n"
              "zero\u200bwidth space, zero\u200cwidth non-joiner, word\u2060joiner, soft\u00adhyphen\n"
              "BOM\ufeffinside, line\u2028separator, paragraph\u2029separator, vertical\x0btab, form\x0cfeed\n"
              "right-to-left mark \u200f and left-to-right mark \u200e and isolates \u2066x\u2069\n")

NFD = ("NFD accents: cafe\u0301, re\u0301sume\u0301, nai\u0308ve, An\u0303o, A\u030angstro\u0308m, "
       "e\u0301te\u0301 vs \u00e9t\u00e9, Vie\u0302\u0323t Nam, o\u0302\u0301, q\u0307 (no precomposed form)\n"
       "Hangul jamo NFD: \u1112\u1161\u11ab\u1100\u1173\u11af vs 한글\n"
       "Combining sequences: a\u0300\u0301\u0302\u0303\u0304, Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034d\n"
       "Compatibility forms: ﬁ ﬂ ﬀ ℌ ℍ ℕ ｈｅｌｌｏ ① ㍻ ㌔ Ⅸ ™ ℃ ℉ µ Ω Å\n")

CHAT = """<|im_start|>system
You are a helpful assistant that describes images precisely.<|im_end|>
<|im_start|>user
<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>What shape is in the top left corner?<|im_end|>
<|im_start|>assistant
<think>
The user asks about the top left corner. I see a red circle.
</think>

A small red circle is in the top left corner.<|im_end|>
<|im_start|>user
Draw a blue square at the bottom right.<|im_end|><|endoftext|>
<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 27 Nov 2026<|eot_id|><|start_header_id|>user<|end_header_id|>

Describe the picture.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

There is a green triangle in the center.<|eot_id|><|end_of_text|>
Adjacent specials: <|im_start|><|im_end|><|im_start|><|im_end|><|eot_id|><|eot_id|>
Near misses: <|im_start <|im_end|x <|not_a_token|> <| im_start |> <|IM_START|> <|im_start|| |> <|
Specials inside words: abc<|im_end|>def 123<|endoftext|>456 ..<|eot_id|>..
Tool call: <tool_call>
{"name": "draw", "arguments": {"shape": "circle", "color": "red", "size": "small"}}
</tool_call>"""

MISC = """URLs: https://huggingface.co/TencentARC/TokLIP/resolve/main/README.md?download=true#section-2
Email: first.last+tag@example.co.uk; path: /usr/local/go/src/net/http/server.go:1234:56; C:\\Users\\me\\file.txt
Base64: iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==
Hex dump: 00 01 02 03 ff fe fd 7f 80 81; UUID 123e4567-e89b-12d3-a456-426614174000
Long word: Pneumonoultramicroscopicsilicovolcanoconiosis Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch
CamelCase and snake_case: getHTTPResponseCode parse_json_file XMLHttpRequest __init__ kebab-case-name SCREAMING_SNAKE
Mixed scripts without spaces: Go语言とPythonの比較ではRustも인기가있다andРусскийтоже。
Repeated letters: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbb zzzzzzzzzzzzzzzz ababababababab
Repeated CJK: 哈哈哈哈哈哈哈哈哈哈 ははははは ㅋㅋㅋㅋㅋㅋㅋ ахахахаха
Control-ish: bell\x07 escape\x1b[31mred\x1b[0m null-free delete\x7f end"""

# Where HuggingFace's Unicode data is not Go's (tokenizer/nfc.go, tokenizer/regex.go): its NFC has
# Unicode 9.0.0's data and reorders runs of any length (Go's puts U+034F after 30 marks), and its
# regex (Oniguruma) has Unicode 16.0.0's letters and digits and folds "'ſ" like "'s".
ZALGO = "\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034d"
UNICODE = (
    "Long mark runs: a" + "\u0301\u0316" * 20 + " e" + "\u0300" * 35 + " o" + "\u031b" * 31 + "\u0301\u0323 u"
    + "\u0308" * 31 + "\u034f\u0304 \u05d1" + "\u05b0\u05bc" * 16 + " q" + "\u0345\u0334" * 16 + "\n"
    "Zalgo: " + "".join(c + ZALGO * 2 for c in "HELLO") + " text, and x" + ZALGO * 3 + "y\n"
    "Marks newer than Unicode 9.0: x\u0301\u1df9 \u0628\u0301\u0899 \u0915\u0301\U00010efd \u0627\u064e\u0898, "
    "and the Dives Akuru vowel sign O spelled out \U00011935\U00011930\n"
    "Letters of Unicode 15.1 and 16.0: Cyrillic \u1c89\u1c8a, Latin \ua7cb\ua7cc\ua7cd\ua7da\ua7db\ua7dc, "
    "Todhri \U000105c0\U000105c1\U000105c2, Garay \U00010d4a\U00010d4b\U00010d4c, Sunuwar \U00011bc0\U00011bc1\U00011bc2, "
    "Kirat Rai \U00016d40\U00016d41\U00016d42, Gurung Khema \U00016100\U00016101, Tulu-Tigalari \U00011380\U00011381, "
    "Ol Onal \U0001e5d0\U0001e5d1, CJK Ext I \U0002ebf0\U0002ebf1\U0002ebf2\n"
    "Inside words: hello\U000105c0\U000105c1world abc\u1c89def x\ua7cby 'ok'\U00016d40s \U0002ebf0\u4e2d\u6587\n"
    "Digits of Unicode 16.0: Garay \U00010d40\U00010d41\U00010d42, Sunuwar \U00011bf0\U00011bf1\U00011bf2, "
    "Kirat Rai \U00016d70\U00016d71\U00016d72, Gurung Khema \U00016130\U00016131, Ol Onal \U0001e5f1\U0001e5f2, "
    "outlined \U0001ccf0\U0001ccf1\U0001ccf2\U0001ccf3; mixed 12\U00011bf03 x\U00016d71\U00016d72y\n"
    "Contractions after them: \U000105c0's \u1c89's \ua7cb\ua7cc'll \U00016d40've \U0002ebf0'd x\ua7cb're \U00011bc0'T\n"
    "Long s after an apostrophe: it'\u017f, IT'\u017f, that'\u017ftill, he'\u017faid, '\u017fa and the Kelvin sign don'\u212a\n"
    "NFC singletons and Hangul: \u2126 \u212a \u212b \u1100\u1161\u11a8 \uac00\u11a8 \u110b\u1175\u11ab\u1100\u1173\u11af \u0344 \u0f73\n"
)


def text():
    parts = [ZH, JA, KO, RU, AR, OTHER, EMOJI, DIGITS, CONTRACTIONS, PUNCT, MISC, CHAT]
    return "\n".join(parts) + "\n" + WHITESPACE + NFD + UNICODE
