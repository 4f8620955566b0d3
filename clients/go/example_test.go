package shipgate_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	shipgate "shipgate.local/clients/go"
	pb "shipgate.local/clients/go/shipgatev1"
)

// A Track call with a deadline, and branching on the error's code and reason.
func Example() {
	c, err := shipgate.New(shipgate.Options{Addresses: []string{"tcp://127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Track(ctx, &pb.TrackRequest{Provider: pb.Provider_PROVIDER_BOSCOD, OrderId: "BOS123"})
	var e *shipgate.Error
	switch {
	case err == nil:
		fmt.Println(resp.GetTracking().GetStatus())
	case shipgate.CodeOf(err) == shipgate.NotFound:
		fmt.Println("no such order")
	case errors.As(err, &e) && e.Local:
		fmt.Printf("gateway not reached: %s after %d attempts\n", e.Reason, e.Attempts)
	default:
		log.Print(err)
	}
}

// CreateOrder needs an idempotency key: a retry with the same key never creates a second order.
func ExampleClient_CreateOrder() {
	c, err := shipgate.New(shipgate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	req := &pb.CreateOrderRequest{Provider: pb.Provider_PROVIDER_BOSONLINE /* ... */}
	resp, err := c.CreateOrder(context.Background(), req,
		shipgate.WithIdempotencyKey("order-2024-0001"),
		shipgate.WithMetadata("caller", "checkout"))
	if err != nil {
		log.Print(err)
		return
	}
	fmt.Println(resp.GetAwb().GetValue(), resp.GetReplayed())
}
