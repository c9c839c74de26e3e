package vision

import "github.com/toklip/toklip/visiontok"

// Floating-point operations (multiply and add counted as two) of one image through each part, from
// the model's shape: convolutions, attention and linear layers; norms and activations are left
// out (a few percent).

func conv(k, cin, cout, side int) float64 { return 2 * float64(k*k*cin*cout) * float64(side*side) }

func res(cin, cout, side int) float64 {
	f := conv(3, cin, cout, side) + conv(3, cout, cout, side)
	if cin != cout {
		f += conv(1, cin, cout, side)
	}
	return f
}

func attnBlock(c, side int) float64 {
	n := float64(side * side)
	return 4*conv(1, c, c, side) + 4*n*n*float64(c)
}

func vqEncodeFlops(c visiontok.Config) float64 {
	side, cin := c.ImageSize, c.Channels
	f := conv(3, 3, c.Channels, side)
	for l, m := range c.ChannelMult {
		for range c.ResBlocks {
			f += res(cin, c.Channels*m, side)
			cin = c.Channels * m
			if l == len(c.ChannelMult)-1 {
				f += attnBlock(cin, side)
			}
		}
		if l != len(c.ChannelMult)-1 {
			side /= 2
			f += conv(3, cin, cin, side)
		}
	}
	f += 2*res(cin, cin, side) + attnBlock(cin, side)
	return f + conv(3, cin, c.ZChannels, side) + conv(1, c.ZChannels, c.CodebookDim, side)
}

func vqDecodeFlops(c visiontok.Config) float64 {
	side, levels := c.Grid, len(c.ChannelMult)
	cin := c.Channels * c.ChannelMult[levels-1]
	f := conv(1, c.CodebookDim, c.ZChannels, side) + conv(3, c.ZChannels, cin, side)
	f += 2*res(cin, cin, side) + attnBlock(cin, side)
	for i := range levels {
		out := c.Channels * c.ChannelMult[levels-1-i]
		for range c.ResBlocks + 1 {
			f += res(cin, out, side)
			cin = out
			if i == 0 {
				f += attnBlock(cin, side)
			}
		}
		if i != levels-1 {
			side *= 2
			f += conv(3, cin, cin, side)
		}
	}
	return f + conv(3, cin, 3, side)
}

func semanticFlops(c visiontok.Config) float64 {
	n, w, ffn := float64(c.Tokens), float64(c.Width), float64(c.FFN)
	layer := 2*n*w*3*w + 4*n*n*w + 2*n*w*w + 4*n*w*ffn
	stem := 2*n*float64(c.CodebookDim)*4*w + 2*n*4*w*w
	pool := 2*w*w + 2*n*w*2*w + 4*n*w + 2*w*w + 4*w*ffn
	return stem + float64(c.Depth)*layer + pool
}
