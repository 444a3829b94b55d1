// Command goregistry speaks metal-operator's registry JSON the way Go's encoding/json does,
// so ferrometal's tests can check the registry against Go itself (standard library only).
//
// The types below have metal-operator's field names, Go types and json tags
// (internal/api/registry), written for this test; Time behaves like metav1.Time (a zero time
// marshals as null, parsing wants RFC 3339).
//
//	goregistry marshal <case>   print the registration payload of <case> (probe, zero, null-time)
//	goregistry decode           read a GET /systems answer on stdin, decode it into Server
//	                            (type-strict, unknown fields ignored as metal-operator does)
//	                            and print what Go decoded, marshalled again
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// SystemUUID is the machine every case reports for.
const SystemUUID = "2e6f0000-0000-4000-8000-000000000001"

// Time marshals and parses like k8s.io/apimachinery's metav1.Time.
type Time struct{ time.Time }

func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return err
	}
	t.Time = parsed.Local()
	return nil
}

type RegistrationPayload struct {
	SystemUUID string `json:"systemUUID"`
	Data       Server `json:"data"`
}

type Server struct {
	Timestamp         *Time              `json:"timestamp,omitempty"`
	SystemInfo        DMI                `json:"systemInfo,omitempty"`
	CPU               []CPUInfo          `json:"cpu,omitempty"`
	NetworkInterfaces []NetworkInterface `json:"networkInterfaces,omitempty"`
	LLDP              []LLDPInterface    `json:"lldp,omitempty"`
	Storage           []BlockDevice      `json:"storage,omitempty"`
	Memory            []MemoryDevice     `json:"memory,omitempty"`
	NICs              []NIC              `json:"nics,omitempty"`
	PCIDevices        []PCIDevice        `json:"pciDevices,omitempty"`
}

type NetworkInterface struct {
	Name          string   `json:"name"`
	IPAddress     string   `json:"ipAddress,omitempty"`
	IPAddresses   []string `json:"ipAddresses"`
	MACAddress    string   `json:"macAddress"`
	CarrierStatus string   `json:"carrierStatus"`
}

type DMI struct {
	BIOSInformation   BIOSInformation   `json:"biosInformation"`
	SystemInformation ServerInformation `json:"systemInformation"`
	BoardInformation  BoardInformation  `json:"boardInformation"`
}

type BIOSInformation struct {
	Vendor  string `json:"vendor"`
	Version string `json:"version"`
	Date    string `json:"date"`
}

type ServerInformation struct {
	Manufacturer string `json:"manufacturer"`
	ProductName  string `json:"productName"`
	Version      string `json:"version"`
	SerialNumber string `json:"serialNumber"`
	UUID         string `json:"uuid"`
	SKUNumber    string `json:"skuNumber"`
	Family       string `json:"family"`
}

type BoardInformation struct {
	Manufacturer string `json:"manufacturer"`
	Product      string `json:"product"`
	Version      string `json:"version"`
	SerialNumber string `json:"serialNumber"`
	AssetTag     string `json:"assetTag"`
}

type CPUInfo struct {
	ID                   int      `json:"id"`
	TotalCores           uint32   `json:"totalCores"`
	TotalHardwareThreads uint32   `json:"totalHardwareThreads"`
	Vendor               string   `json:"vendor"`
	Model                string   `json:"model"`
	Capabilities         []string `json:"capabilities"`
}

type LLDPInterface struct {
	Name      string     `json:"name"`
	Neighbors []Neighbor `json:"neighbors"`
}

type Neighbor struct {
	ChassisID         string   `json:"chassisId,omitempty"`
	PortID            string   `json:"portId,omitempty"`
	PortDescription   string   `json:"portDescription,omitempty"`
	SystemName        string   `json:"systemName,omitempty"`
	SystemDescription string   `json:"systemDescription,omitempty"`
	MgmtIP            string   `json:"mgmtIp,omitempty"`
	Capabilities      []string `json:"capabilities,omitempty"`
	VlanID            string   `json:"vlanId,omitempty"`
}

type BlockDevice struct {
	Path              string `json:"path"`
	Name              string `json:"name"`
	Rotational        bool   `json:"rotational"`
	Removable         bool   `json:"removable"`
	ReadOnly          bool   `json:"readOnly"`
	Vendor            string `json:"vendor"`
	Model             string `json:"model"`
	Serial            string `json:"serial"`
	WWID              string `json:"wwid"`
	PhysicalBlockSize uint64 `json:"physicalBlockSize"`
	LogicalBlockSize  uint64 `json:"logicalBlockSize"`
	HWSectorSize      uint64 `json:"hWSectorSize"`
	SizeBytes         uint64 `json:"sizeBytes"`
	NUMANodeID        int    `json:"numaNodeID"`
}

type MemoryDevice struct {
	SizeBytes             int64  `json:"size"`
	DeviceSet             string `json:"deviceSet"`
	DeviceLocator         string `json:"deviceLocator"`
	BankLocator           string `json:"bankLocator"`
	MemoryType            string `json:"memoryType"`
	Speed                 string `json:"speed"`
	Vendor                string `json:"vendor"`
	SerialNumber          string `json:"serialNumber"`
	AssetTag              string `json:"assetTag"`
	PartNumber            string `json:"partNumber"`
	ConfiguredMemorySpeed string `json:"configuredMemorySpeed"`
	MinimumVoltage        string `json:"minimumVoltage"`
	MaximumVoltage        string `json:"maximumVoltage"`
	ConfiguredVoltage     string `json:"configuredVoltage"`
}

type NIC struct {
	Name            string   `json:"name"`
	MAC             string   `json:"mac"`
	PCIAddress      string   `json:"pciAddress"`
	Speed           string   `json:"speed"`
	LinkModes       []string `json:"linkModes"`
	SupportedPorts  []string `json:"supportedPorts"`
	FirmwareVersion string   `json:"firmwareVersion"`
}

type PCIDevice struct {
	Address    string `json:"address,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
	VendorID   string `json:"vendorID,omitempty"`
	Product    string `json:"product,omitempty"`
	ProductID  string `json:"productID,omitempty"`
	NumaNodeID int    `json:"numaNodeID,omitempty"`
}

// probe is a report as metal-operator's metalprobe builds it: a timestamp, nil slices where
// nothing was found (no addresses on eno2, no CPU flags, no LLDP neighbours on eno2), and zero
// values in the fields it does not fill.
func probe() Server {
	at := Time{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return Server{
		Timestamp: &at,
		SystemInfo: DMI{
			BIOSInformation:   BIOSInformation{Vendor: "Contoso", Version: "1.2.3"},
			SystemInformation: ServerInformation{Manufacturer: "Contoso", ProductName: "R1", SerialNumber: "SN-1", UUID: SystemUUID, SKUNumber: "SKU-1"},
		},
		CPU: []CPUInfo{{ID: 0, TotalCores: 4, TotalHardwareThreads: 8, Vendor: "GenuineIntel", Model: "Xeon"}},
		NetworkInterfaces: []NetworkInterface{
			{Name: "eno1", IPAddresses: []string{"10.0.0.5", "fd00::5"}, MACAddress: "52:54:00:2e:00:01", CarrierStatus: "up"},
			{Name: "eno2", MACAddress: "52:54:00:2e:00:02", CarrierStatus: "down"},
		},
		LLDP: []LLDPInterface{
			{Name: "eno1", Neighbors: []Neighbor{{ChassisID: "aa:bb:cc:00:00:01", PortID: "Ethernet1/7", SystemName: "leaf-1", Capabilities: []string{"Bridge"}}}},
			{Name: "eno2"},
		},
		Storage: []BlockDevice{{Path: "/dev/sda", Name: "sda", Rotational: true, SizeBytes: 64 << 30, NUMANodeID: -1}},
		Memory:  []MemoryDevice{{SizeBytes: 8 << 30}, {SizeBytes: 8 << 30, DeviceLocator: "DIMM 2"}},
		NICs:    []NIC{{Name: "eno1", MAC: "52:54:00:2e:00:01"}},
	}
}

// nullTime is a report whose timestamp points at a zero time (written as null) and whose
// one interface has no addresses.
func nullTime() Server {
	return Server{
		Timestamp:         &Time{},
		NetworkInterfaces: []NetworkInterface{{Name: "eno1", MACAddress: "52:54:00:2e:00:01"}},
		LLDP:              []LLDPInterface{{Name: "eno1"}},
		CPU:               []CPUInfo{{TotalCores: 2}},
	}
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "goregistry:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "marshal":
		var data Server
		switch args[1] {
		case "probe":
			data = probe()
		case "zero":
		case "null-time":
			data = nullTime()
		default:
			return fmt.Errorf("unknown case %q", args[1])
		}
		return json.NewEncoder(os.Stdout).Encode(RegistrationPayload{SystemUUID: SystemUUID, Data: data})
	case len(args) == 1 && args[0] == "decode":
		var server Server
		decoder := json.NewDecoder(os.Stdin)
		if err := decoder.Decode(&server); err != nil {
			return fmt.Errorf("cannot decode the answer into metal-operator's Server: %w", err)
		}
		if decoder.More() {
			return fmt.Errorf("trailing data after the answer")
		}
		return json.NewEncoder(os.Stdout).Encode(server)
	default:
		return fmt.Errorf("usage: goregistry marshal probe|zero|null-time | goregistry decode")
	}
}
