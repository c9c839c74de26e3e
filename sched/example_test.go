package sched_test

import (
	"context"
	"fmt"
	"time"

	"github.com/toklip/toklip/sched"
)

type engine struct{ name string }

func (e *engine) Close() error { fmt.Println("unloaded", e.name); return nil }

func Example() {
	sizes := map[string]int64{"small": 3 << 30, "large": 6 << 30}
	resolve := func(name string) (sched.Spec[*engine], error) {
		size, ok := sizes[name]
		if !ok {
			return sched.Spec[*engine]{}, fmt.Errorf("no model %q", name)
		}
		return sched.Spec[*engine]{Size: size, Slots: 4, Open: func(context.Context) (*engine, error) {
			fmt.Println("loaded", name)
			return &engine{name}, nil
		}}, nil
	}
	s := sched.New(resolve, sched.Options{Budget: 8 << 30, KeepAlive: 5 * time.Minute})

	for _, name := range []string{"small", "small", "large"} {
		lease, err := s.Get(context.Background(), name, nil)
		if err != nil {
			fmt.Println(err)
			continue
		}
		release, _ := lease.Enter(context.Background(), 1) // a slot of the model's engine
		// ... answer the request with lease.Value() ...
		release()
		lease.Release()
	}
	for _, st := range s.Loaded() {
		fmt.Println("loaded now:", st.Name)
	}
	// Output:
	// loaded small
	// unloaded small
	// loaded large
	// loaded now: large
}
