/*
 * create_order.h - the CreateOrder document's example (bosOnline) as proto3 JSON, for the tests
 * that send one: the body the provider receives is the document's example body.
 */
#ifndef SG_TEST_CREATE_ORDER_H
#define SG_TEST_CREATE_ORDER_H

static const char CREATE_JSON[] =
        "{\"provider\":\"PROVIDER_BOSONLINE\",\"formId\":\"d9cc7807-36c2-4eb1-b910-ece18a1bbb6e\","
        "\"sender\":{\"warehouseName\":\"Alfian\",\"name\":\"Alfian\",\"phone\":\"081732131321\","
        "\"addressId\":\"15022\",\"detail\":\"Bukit Kismadani 6\",\"latitude\":2.9372132131231,"
        "\"longitude\":3.41321312312312},"
        "\"receiver\":{\"name\":\"Faisol\",\"phone\":\"083131412312\",\"addressId\":\"15022\","
        "\"address\":\"BUkit Kismadani1\",\"extraFields\":["
        "{\"fieldName\":\"Nama Pembeli\",\"value\":\"kiroomin Muqorrobin\"},"
        "{\"fieldName\":\"Alamat Email\",\"value\":\"mkiroomin@gmail.com\"}]},"
        "\"pickupVia\":\"PICKUP_METHOD_PICKUP\",\"serviceCode\":\"00\",\"insuranceType\":1,"
        "\"courierCode\":\"idx\",\"payment\":{\"type\":\"PAYMENT_TYPE_COD\"},\"orderType\":0,"
        "\"waValidation\":true,\"items\":[{\"sku\":\"BAT-AA-001-01\",\"quantity\":\"1\"},"
        "{\"sku\":\"BAT-AA-001-02\",\"quantity\":\"1\"}]}";

#endif /* SG_TEST_CREATE_ORDER_H */
