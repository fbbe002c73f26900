// kubecheck strictly decodes Kubernetes manifests (multi-doc YAML on stdin) into the typed
// client-go scheme, the offline half of `helm template --validate`: unknown or misplaced fields
// and wrong types are errors. Kinds outside the scheme (KEDA, prometheus-operator CRDs) are
// reported as "skip". Built and run by tests/helm (see conftest.py).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func main() {
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
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
			if gvk != nil && !scheme.Scheme.Recognizes(*gvk) {
				fmt.Printf("skip %s (not in the client-go scheme)\n", gvk.Kind)
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
