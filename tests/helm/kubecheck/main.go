// kubecheck strictly decodes Kubernetes manifests (multi-doc YAML on stdin) into the typed
// Kubernetes API types, the offline half of `helm template --validate`: unknown or misplaced fields
// and wrong types are errors. Kinds outside the scheme (KEDA, prometheus-operator CRDs) are
// reported as "skip". Built and run by tests/helm (see conftest.py).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The API groups the chart renders (a small scheme keeps the build fast: no client-go).
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, autoscalingv2.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

func main() {
	scheme := newScheme()
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: false, Strict: true})
	r := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	failed := false
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(2)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil || string(js) == "null" {
			continue
		}
		obj, gvk, err := s.Decode(js, nil, nil)
		if err != nil {
			if gvk != nil && !scheme.Recognizes(*gvk) {
				fmt.Printf("skip %s (not a built-in kind)\n", gvk.Kind)
				continue
			}
			fmt.Printf("FAIL %v: %v\n", gvk, err)
			failed = true
			continue
		}
		fmt.Printf("ok   %s\n", obj.GetObjectKind().GroupVersionKind().Kind)
	}
	if failed {
		os.Exit(1)
	}
}
