// A Lambda function built with github.com/aws/aws-lambda-go, the conformance test of the
// Runtime API for Go (tests/runtime/test_runtime_api_clients.py). Built by
// `make lambda-go` (hack/build-tools.sh lambdago) into
// ~/.cache/lambdakube/tools/lambdago-<aws-lambda-go version>-<hash of this file>/bin/lambdago;
// a test puts it in a code directory as the function's `bootstrap`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Module-level state: the same for every invocation of one environment.
var instanceID = fmt.Sprintf("go-%d-%d", os.Getpid(), time.Now().UnixNano())
var count = 0

type Event struct {
	Action string `json:"action"`
	Bytes  int    `json:"bytes"`
	Sleep  int    `json:"sleepMs"`
	Print  string `json:"print"`
}

func handle(ctx context.Context, event Event) (map[string]any, error) {
	count++
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	if event.Print != "" {
		fmt.Println(event.Print)
	}
	switch event.Action {
	case "fail":
		return nil, errors.New("go handler failed")
	case "exit":
		os.Exit(3)
	case "sleep":
		time.Sleep(time.Duration(event.Sleep) * time.Millisecond)
	case "big":
		return map[string]any{"data": strings.Repeat("x", event.Bytes)}, nil
	}
	return map[string]any{
		"instanceId":   instanceID,
		"count":        count,
		"requestId":    lc.AwsRequestID,
		"arn":          lc.InvokedFunctionArn,
		"remainingMs":  time.Until(deadline).Milliseconds(),
		"functionName": lambdacontext.FunctionName,
		"memory":       lambdacontext.MemoryLimitInMB,
		"handler":      os.Getenv("_HANDLER"),
		"taskRoot":     os.Getenv("LAMBDA_TASK_ROOT"),
		"region":       os.Getenv("AWS_REGION"),
	}, nil
}

func main() {
	lambda.Start(handle)
}
