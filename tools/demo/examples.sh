#!/bin/sh
# Makes the README's examples with the embedded demo model: scenes it describes and drawings it
# makes, as PNG files in docs/demo/, and prints the chat transcript (markdown) that produced them.
#   make demo-examples
set -eu
BIN=$(realpath "${BIN:-bin/toklip}")
OUT=${OUT:-docs/demo}
mkdir -p "$OUT"

say() { # the command as the reader would type it, then what it printed
	printf '$ toklip'
	for a in "$@"; do
		case $a in *" "*) printf ' "%s"' "$a" ;; *) printf ' %s' "$a" ;; esac
	done
	printf '\n'
	"$BIN" "$@" 2>/dev/null
}

echo '```console'
# Understanding: a seen combination, and one of the combinations never shown in training.
say scene "a small green triangle in the bottom right corner" -seed 7 -o "$OUT/scene-1.png"
say run -image "$OUT/scene-1.png" "Describe the image."
say scene "a large purple circle in the top left corner" -seed 8 -o "$OUT/scene-2.png"
say run -image "$OUT/scene-2.png" "Describe the image."
say run -image "$OUT/scene-2.png" "What color is it?"
say run -image "$OUT/scene-2.png" "Where is the shape?"
# Generation: a seen combination and an unseen one, then a drawing inside a chat answer.
say generate "a large yellow square in the bottom left corner" -o "$OUT/drawn-1.png"
say generate "a small blue triangle in the top right corner" -o "$OUT/drawn-2.png"
cd "$OUT" # run -draw writes its images into the working folder, named from the message and the time
rm -f toklip-image-*.png draw-a-large-orange-star-in-the-center-*.png
say run -draw "Draw a large orange star in the center."
echo '```'
mv draw-a-large-orange-star-in-the-center-*.png chat-drawn.png # the README's table names it so
